"""The web console in a real headless Chromium: a wrong password, sign-in, browse, upload with
progress (single PUT and multipart), download, share link, multi-select delete, keys and metrics.

Skipped with the reason when Chromium or Playwright is missing (tests/console_browser.py).
COFFER_CONSOLE_SCREENSHOTS=1 also writes each page's screenshot to docs/console/.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console_browser import launch, why_unavailable
from tests.server_process import ServerProcess

pytestmark = [pytest.mark.server, pytest.mark.skipif(why_unavailable() is not None, reason=str(why_unavailable()))]

ROOT_KEY, ROOT_SECRET = "browserroot", "browserroot-secret"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "console"
BIG = 20 * 1024 * 1024  # above the page's 16 MiB multipart threshold: two parts


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"COFFER_ACCESS_KEY": ROOT_KEY, "COFFER_SECRET_KEY": ROOT_SECRET}
    proc = ServerProcess(tmp_path_factory.mktemp("console-browser") / "data", "--fsync", "never", env=env).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch(pw)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, console_server: ServerProcess) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 760}, accept_downloads=True)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # confirm() before deletes
    # Anything the page's Content-Security-Policy refuses is a bug in the page.
    page.csp_errors = []
    page.on("console", lambda m: "Content Security Policy" in m.text and page.csp_errors.append(m.text))
    page.goto(console_server.endpoint + "/_coffer/console/")
    page.wait_for_selector("body[data-ready=true]")
    yield page
    assert page.csp_errors == []
    context.close()


def shot(page: Any, name: str, tmp_path: Path) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    if os.environ.get("COFFER_CONSOLE_SCREENSHOTS"):
        DOCS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS / f"{name}.png"), full_page=True)


def sign_in(page: Any, access_key: str = ROOT_KEY, secret: str = ROOT_SECRET) -> None:
    page.fill("#login-ak", access_key)
    page.fill("#login-sk", secret)
    page.click("#login-form button[type=submit]")


def test_wrong_password(page: Any, tmp_path: Path) -> None:
    # With the keyboard only: type, then Enter submits the form.
    page.keyboard.type(ROOT_KEY)  # the access key field has the focus when the page opens
    page.keyboard.press("Tab")
    page.keyboard.type("not-the-secret")
    page.keyboard.press("Enter")
    page.wait_for_selector("#login-error:has-text('Wrong access key or secret key')")
    assert page.is_visible("#view-login") and not page.is_visible("#view-buckets")
    shot(page, "sign-in-error", tmp_path)


def test_sign_in_browse_upload_download_share_delete(page: Any, console_server: ServerProcess, tmp_path: Path) -> None:
    s3 = console_server.client(ROOT_KEY, ROOT_SECRET)
    page.fill("#login-ak", ROOT_KEY)
    shot(page, "sign-in", tmp_path)
    sign_in(page)
    page.wait_for_selector("#view-buckets:not([hidden])")

    # Create a bucket in the page; it appears with its totals.
    page.fill("#new-bucket", "photos")
    page.click("#create-bucket button")
    page.wait_for_selector("#bucket-table tr[data-bucket=photos]")
    s3.put_object(Bucket="photos", Key="2024/summer/beach.txt", Body=b"sand")
    s3.put_object(Bucket="photos", Key="2024/winter.txt", Body=b"snow")
    page.click("#refresh-buckets")  # totals may be cached (for longer when the machine is slow)
    page.wait_for_selector("#bucket-table tr[data-bucket=photos] td.num:has-text('2')")
    shot(page, "buckets", tmp_path)

    # Browse like folders.
    page.click("#bucket-table a:has-text('photos')")
    page.click("#object-table a.folder:has-text('2024/')")
    page.wait_for_selector("#object-table tr[data-key='2024/winter.txt']")
    assert page.is_visible("#object-table a.folder:has-text('summer/')")
    assert page.inner_text("#crumbs [aria-current=page]") == "2024"

    # Upload: a small file (one PUT) and a large one (multipart), each with its own progress bar.
    small, big = tmp_path / "notes.txt", tmp_path / "video.bin"
    small.write_bytes(b"console upload")
    big.write_bytes(os.urandom(1024) * (BIG // 1024))
    page.evaluate(
        """() => { window.progressSeen = {};
        new MutationObserver((records) => { for (const r of records) { const bar = r.target;
          const name = bar.getAttribute('aria-label'); (window.progressSeen[name] ||= []).push(Number(bar.value)); } })
        .observe(document.getElementById('uploads'),
                 {subtree: true, attributes: true, attributeFilter: ['value']}); }"""
    )
    page.set_input_files("#pick-files", [str(small), str(big)])
    page.wait_for_selector("#uploads li:has-text('video.bin') .state:has-text('done')", timeout=60_000)
    page.wait_for_selector("#uploads li:has-text('notes.txt') .state:has-text('done')")
    seen = page.evaluate("window.progressSeen")
    big_values = seen["Upload progress of video.bin"]
    assert any(0 < v < 100 for v in big_values) and big_values[-1] == 100
    head = s3.head_object(Bucket="photos", Key="2024/video.bin")
    assert head["ContentLength"] == BIG and head["ETag"].endswith('-2"')  # two parts
    assert s3.get_object(Bucket="photos", Key="2024/notes.txt")["Body"].read() == b"console upload"
    page.wait_for_selector("#object-table tr[data-key='2024/video.bin']")
    shot(page, "browse-upload", tmp_path)

    # Drag and drop: a file dropped on the page lands in the current folder.
    page.evaluate(
        """() => { const dt = new DataTransfer();
        dt.items.add(new File(['dropped bytes'], 'dropped.txt', {type: 'text/plain'}));
        const drop = new DragEvent('drop', {dataTransfer: dt, bubbles: true});
        document.getElementById('dropzone').dispatchEvent(drop); }"""
    )
    page.wait_for_selector("#uploads li:has-text('dropped.txt') .state:has-text('done')")
    assert s3.get_object(Bucket="photos", Key="2024/dropped.txt")["Body"].read() == b"dropped bytes"

    # Details, download and share link.
    s3.put_object_tagging(Bucket="photos", Key="2024/notes.txt", Tagging={"TagSet": [{"Key": "team", "Value": "blue"}]})
    page.click("#object-table button.linkish:has-text('notes.txt')")
    page.wait_for_selector("#details-tags dd:has-text('blue')")
    assert "14 B" in page.inner_text("#details-props")
    shot(page, "object-details", tmp_path)
    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    assert download.suggested_filename == "notes.txt"
    assert Path(download.path()).read_bytes() == b"console upload"
    page.select_option("#share-expiry", "86400")
    page.click("#share-form button")
    page.wait_for_selector("#share-url:not([hidden])")
    url = page.input_value("#share-url")
    assert "X-Amz-Expires=86400" in url
    with urllib.request.urlopen(url) as resp:  # anyone with the link, no cookie
        assert resp.read() == b"console upload"
    shot(page, "share-link", tmp_path)
    page.click("#details .dialog-close button")

    # Multi-select delete.
    page.check("#object-table tr[data-key='2024/notes.txt'] .pick")
    page.check("#object-table tr[data-key='2024/dropped.txt'] .pick")
    page.click("#delete-selected")
    page.wait_for_selector("#object-table tr[data-key='2024/notes.txt']", state="detached")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="photos", Prefix="2024/")["Contents"]}
    assert keys == {"2024/summer/beach.txt", "2024/winter.txt", "2024/video.bin"}

    # Narrow screen: the browse page still fits.
    page.set_viewport_size({"width": 390, "height": 800})
    shot(page, "browse-narrow", tmp_path)

    # Sign out: back to the sign-in form, and the old page can no longer list.
    page.click("#logout")
    page.wait_for_selector("#view-login:not([hidden])")


def test_pagination(page: Any, console_server: ServerProcess) -> None:
    s3 = console_server.client(ROOT_KEY, ROOT_SECRET)
    s3.create_bucket(Bucket="many")
    for i in range(1005):
        s3.put_object(Bucket="many", Key=f"k{i:05d}", Body=b"")
    sign_in(page)
    page.wait_for_selector("#view-buckets:not([hidden])")
    page.goto(console_server.endpoint + "/_coffer/console/#/b/many/")
    page.wait_for_selector("#object-table tr[data-key=k00999]")
    assert page.locator("#object-table tbody tr").count() == 1000
    page.click("#next-page")
    page.wait_for_selector("#object-table tr[data-key=k01004]")
    assert page.locator("#object-table tbody tr").count() == 5
    page.click("#prev-page")
    page.wait_for_selector("#object-table tr[data-key=k00000]")


def test_root_keys_and_metrics(page: Any, console_server: ServerProcess, tmp_path: Path) -> None:
    sign_in(page)
    page.wait_for_selector("#view-buckets:not([hidden])")
    page.click("header a:has-text('Keys')")
    page.wait_for_selector(f"#key-table tr[data-key={ROOT_KEY}]")
    page.fill("#key-name", "reporting")
    page.click("#create-key button")
    page.wait_for_selector("#new-secret")
    made = page.inner_text("#new-key code >> nth=0")
    page.wait_for_selector(f"#key-table tr[data-key={made}]")
    shot(page, "keys", tmp_path)
    page.click(f"#key-table tr[data-key={made}] button")
    page.wait_for_selector(f"#key-table tr[data-key={made}]", state="detached")
    page.click("header a:has-text('Metrics')")
    # Two samples make the first rates; a few more give the lines some length for the screenshot.
    page.wait_for_selector("#chart-requests polyline", state="attached", timeout=15_000)
    s3 = console_server.client(ROOT_KEY, ROOT_SECRET)
    s3.create_bucket(Bucket="traffic")
    for i in range(150):  # some S3 traffic for the charts to show (spread over the samples)
        s3.put_object(Bucket="traffic", Key=f"t{i % 10}", Body=b"x" * 4096)
        s3.get_object(Bucket="traffic", Key=f"t{i % 10}")["Body"].read()
        page.wait_for_timeout(20)
    assert page.locator("#chart-bytes polyline").count() == 2
    assert page.locator("#chart-latency polyline").count() == 3
    shot(page, "metrics", tmp_path)


def test_versions_in_details(page: Any, console_server: ServerProcess) -> None:
    s3 = console_server.client(ROOT_KEY, ROOT_SECRET)
    s3.create_bucket(Bucket="versioned")
    s3.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
    ids = [s3.put_object(Bucket="versioned", Key="doc.txt", Body=body)["VersionId"] for body in (b"one", b"two!")]
    sign_in(page)
    page.wait_for_selector("#view-buckets:not([hidden])")
    page.goto(console_server.endpoint + "/_coffer/console/#/b/versioned/")
    page.focus("#object-table button.linkish:has-text('doc.txt')")
    page.keyboard.press("Enter")  # objects open from the keyboard too
    page.wait_for_selector("#details-versions table")
    text = page.inner_text("#details-versions")
    assert f"{ids[1]} (latest)" in text and ids[0] in text
    page.keyboard.press("Escape")  # the dialog closes from the keyboard
    page.wait_for_selector("#details", state="hidden")


def test_folder_upload(page: Any, console_server: ServerProcess, tmp_path: Path) -> None:
    s3 = console_server.client(ROOT_KEY, ROOT_SECRET)
    s3.create_bucket(Bucket="folders")
    album = tmp_path / "album"
    (album / "raw").mkdir(parents=True)
    (album / "cover.txt").write_bytes(b"cover")
    (album / "raw" / "one.txt").write_bytes(b"one")
    sign_in(page)
    page.wait_for_selector("#view-buckets:not([hidden])")
    page.goto(console_server.endpoint + "/_coffer/console/#/b/folders/")
    page.wait_for_selector("#crumbs [aria-current=page]")
    page.set_input_files("#pick-folder", str(album))  # the folder picker (webkitdirectory)
    page.wait_for_selector("#uploads li:has-text('album/raw/one.txt') .state:has-text('done')")
    page.wait_for_selector("#uploads li:has-text('album/cover.txt') .state:has-text('done')")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="folders")["Contents"]}
    assert keys == {"album/cover.txt", "album/raw/one.txt"}
    page.wait_for_selector("#object-table a.folder:has-text('album/')")
