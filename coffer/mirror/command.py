"""``coffer mirror copy|sync|verify SRC DST``: the click commands (registered in coffer/cli.py)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Any

import click

_UNITS = {
    "": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
_SIZE = re.compile(r"\s*(\d+)\s*([a-zA-Z]*)\s*")


class ByteSize(click.ParamType):  # type: ignore[type-arg]
    """``8MiB``, ``16MB``, ``5242880``."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = _SIZE.fullmatch(str(value))
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _UNITS:
            self.fail(f"{value!r} is not a size (e.g. 8MiB, 16MB, 5242880)", param, ctx)
        return int(match.group(1)) * _UNITS[unit]


def _side_options(side: str, label: str) -> Callable[[Any], Any]:
    """--{side}-endpoint, -region, -access-key, -secret-key, -session-token, -profile."""
    env = f"COFFER_MIRROR_{side.upper()}_"
    options = [
        click.option(
            f"--{side}-endpoint",
            envvar=env + "ENDPOINT",
            help=f"{label} endpoint URL, e.g. http://127.0.0.1:9000 (default: AWS S3 in the region).",
        ),
        click.option(
            f"--{side}-region",
            envvar=env + "REGION",
            help=f"{label} signing region (default AWS_REGION, AWS_DEFAULT_REGION, us-east-1).",
        ),
        click.option(f"--{side}-access-key", envvar=env + "ACCESS_KEY", help=f"{label} access key id."),
        click.option(f"--{side}-secret-key", envvar=env + "SECRET_KEY", help=f"{label} secret key."),
        click.option(f"--{side}-session-token", envvar=env + "SESSION_TOKEN", help=f"{label} session token."),
        click.option(
            f"--{side}-profile",
            envvar=env + "PROFILE",
            help=f"{label} profile in the shared credentials file (~/.aws/credentials).",
        ),
    ]

    def apply(fn: Any) -> Any:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


def _valued(flag: str, kind: Any, default: object, text: str) -> Callable[[Any], Any]:
    return click.option(flag, type=kind, default=default, show_default=True, help=text)


def _common_options(fn: Any) -> Any:
    options = [
        click.argument("source", metavar="SRC"),
        click.argument("destination", metavar="DST"),
        _side_options("source", "Source"),
        _side_options("dest", "Destination"),
        _valued("--concurrency", click.IntRange(1, 256), 16, "Objects (or verify reads) in flight at once."),
        _valued(
            "--multipart-threshold", ByteSize(), "16MiB", "Objects larger than this are copied as multipart uploads."
        ),
        _valued("--part-size", ByteSize(), "8MiB", "Multipart part size (raised to fit 10,000 parts)."),
        _valued("--retries", click.IntRange(0, 20), 3, "Retries of an object after a transient error or bad checksum."),
        click.option(
            "--ca-bundle",
            type=click.Path(dir_okay=False),
            default=None,
            help="CA certificates (PEM) for https endpoints.",
        ),
        click.option("--json", "json_out", is_flag=True, help="Print the JSON report on stdout (no summary line)."),
        click.option(
            "--report",
            "report_path",
            type=click.Path(dir_okay=False),
            default=None,
            help="Also write the JSON report to this file.",
        ),
        click.option("--no-progress", is_flag=True, help="No progress display on stderr."),
        click.option("--storage-class", is_flag=True, help="Also copy each object's storage class."),
        click.option(
            "--max-objects",
            type=click.IntRange(min=0),
            default=None,
            hidden=True,
            help="Stop after starting this many copies (tests of resuming).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group()
def mirror() -> None:
    """Copy, sync or verify objects between two S3 endpoints (Coffer or not).

    SRC and DST are s3://bucket[/prefix] URLs; each side has its own endpoint, region and
    credentials (--source-* / --dest-* options, COFFER_MIRROR_SOURCE_* / COFFER_MIRROR_DEST_*
    variables, else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the AWS_PROFILE profile).
    Re-running resumes: objects already at the destination are skipped. See docs/mirror.md.
    """


@mirror.command("copy")
@_common_options
@click.option("--dry-run", is_flag=True, help="List what would be copied; change nothing.")
def mirror_copy(**kwargs: Any) -> None:
    """Copy objects missing or different at DST (never deletes)."""
    _run("copy", **kwargs)


@mirror.command("sync")
@_common_options
@click.option("--dry-run", is_flag=True, help="List what would be copied and deleted; change nothing.")
@click.option("--delete", is_flag=True, help="Also delete objects under DST that SRC does not have.")
def mirror_sync(**kwargs: Any) -> None:
    """Make DST match SRC: copy what is missing or different, with --delete remove the rest."""
    _run("sync", **kwargs)


@mirror.command("verify")
@_common_options
@click.option("--read-back", is_flag=True, help="Read both sides' bytes and compare their MD5s.")
def mirror_verify(**kwargs: Any) -> None:
    """Check that DST holds every SRC object with the same size and ETag or checksum."""
    _run("verify", **kwargs)


def _run(command: str, **kw: Any) -> None:
    from coffer.mirror.client import RemoteError
    from coffer.mirror.location import LocationError, make_location
    from coffer.mirror.plan import ListingOrderError
    from coffer.mirror.runner import MirrorOptions, run_mirror
    from coffer.mirror.transfer import TransferOptions

    try:
        locations = [
            make_location(
                kw[url],
                kw[f"{side}_endpoint"],
                kw[f"{side}_region"],
                kw[f"{side}_access_key"],
                kw[f"{side}_secret_key"],
                kw[f"{side}_session_token"],
                kw[f"{side}_profile"],
            )
            for url, side in (("source", "source"), ("destination", "dest"))
        ]
    except LocationError as exc:
        raise click.UsageError(str(exc)) from None
    if kw["part_size"] < 5 << 20:
        raise click.UsageError("--part-size must be at least 5MiB (S3's smallest part)")
    options = MirrorOptions(
        concurrency=kw["concurrency"],
        dry_run=kw.get("dry_run", False),
        delete=kw.get("delete", False),
        read_back=kw.get("read_back", False),
        retries=kw["retries"],
        max_objects=kw["max_objects"],
        progress=not kw["no_progress"],
        ca_bundle=kw["ca_bundle"],
        transfer=TransferOptions(
            multipart_threshold=kw["multipart_threshold"], part_size=kw["part_size"], storage_class=kw["storage_class"]
        ),
    )
    try:
        report = run_mirror(command, locations[0], locations[1], options)
    except LocationError as exc:
        raise click.UsageError(str(exc)) from None
    except RemoteError as exc:
        raise click.ClickException(f"cannot read the listings: {exc}") from None
    except ListingOrderError as exc:
        raise click.ClickException(str(exc)) from None
    document = json.dumps(report.as_dict(), indent=2, ensure_ascii=False)
    if kw["report_path"]:
        with open(kw["report_path"], "w", encoding="utf-8") as out:
            out.write(document + "\n")
    if kw["json_out"]:
        click.echo(document)
    else:
        for failure in report.failures:
            click.echo(f"failed: {failure['key']}: {failure['error']}", err=True)
        for label, names in (("missing", report.missing), ("differs", report.differs), ("extra", report.extra)):
            for name in names[:100]:
                click.echo(f"{label}: {name}", err=True)
        if report.deletes_skipped:
            click.echo(report.deletes_skipped, err=True)
        click.echo(report.summary(), err=True)
    if report.interrupted:
        sys.exit(130)
    sys.exit(0 if report.ok else 1)
