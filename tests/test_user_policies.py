"""Identity policies of key pairs: presets, a prefix-scoped backup key, Deny in an identity
policy against a bucket policy's Allow, s3:BypassGovernanceRetention, and bad policies refused
clearly by `coffer keys add` and at start-up.

The restricted keys belong to MAIN's user (same user id: extra keys of one account, like IAM
users), so what they may do in MAIN's buckets is what their policy allows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from coffer.server.access.identity import PRESETS
from tests.auth_support import ALT, MAIN, User, client, eventually, new_bucket_name, outcome, start_auth_server
from tests.server_process import ServerProcess

pytestmark = pytest.mark.server

READER = User("AKIAREADER000000", "reader-secret-0123456789", MAIN.user_id, "reader")
WRITER = User("AKIAWRITER000000", "writer-secret-0123456789", MAIN.user_id, "writer")
BACKUP = User("AKIABACKUP000000", "backup-secret-0123456789", MAIN.user_id, "backup")
NOBYPASS = User("AKIANOBYPASS0000", "nobypass-secret-0123456", MAIN.user_id, "nobypass")
DENIER = User("AKIADENIER000000", "denier-secret-0123456789", "denier-user-id", "denier")
OUTSIDE_READER = User("AKIAOUTREADER000", "outreader-secret-0123456", "outside-reader-id", "outside reader")
CLIKEY = User("AKIACLIKEY000000", "clikey-secret-0123456789", MAIN.user_id, "clikey")

BACKUPS = "user-policies-backups"


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


BACKUP_POLICY = doc(
    {
        "Effect": "Allow",
        "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
        "Resource": f"arn:aws:s3:::{BACKUPS}/host1/*",
    }
)
NOBYPASS_POLICY = doc(
    {
        "Effect": "Allow",
        "Action": ["s3:PutObject", "s3:GetObject*", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:List*"],
        "Resource": "*",
    }
)
DENIER_POLICY = doc(
    {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
    {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::*/private/*"},
)


def entry(user: User, policy: Any) -> dict[str, Any]:
    return {
        "access_key": user.access_key,
        "secret_key": user.secret_key,
        "user_id": user.user_id,
        "display_name": user.display_name,
        "policy": policy,
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    credentials = [
        {"access_key": ALT.access_key, "secret_key": ALT.secret_key, "user_id": ALT.user_id},
        entry(READER, "readonly"),  # a preset by name
        entry(WRITER, PRESETS["writeonly"]),  # a JSON string
        entry(BACKUP, BACKUP_POLICY),  # a YAML mapping
        entry(NOBYPASS, NOBYPASS_POLICY),
        entry(DENIER, json.dumps(DENIER_POLICY)),
        entry(OUTSIDE_READER, "readonly"),
    ]
    proc = start_auth_server(tmp_path_factory.mktemp("user-policies"), credentials=credentials)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def main(server: ServerProcess):  # type: ignore[no-untyped-def]
    return client(server, MAIN)


@pytest.fixture
def data(main) -> str:  # type: ignore[no-untyped-def]
    name = new_bucket_name()
    main.create_bucket(Bucket=name)
    main.put_object(Bucket=name, Key="a", Body=b"a")
    return name


def test_readonly_key(server: ServerProcess, data: str) -> None:
    reader = client(server, READER)
    assert reader.get_object(Bucket=data, Key="a")["Body"].read() == b"a"
    assert [o["Key"] for o in reader.list_objects_v2(Bucket=data)["Contents"]] == ["a"]
    assert data in [b["Name"] for b in reader.list_buckets()["Buckets"]]
    assert outcome(lambda: reader.put_object(Bucket=data, Key="b", Body=b"b")) == "AccessDenied"
    assert outcome(lambda: reader.delete_object(Bucket=data, Key="a")) == "AccessDenied"
    assert outcome(lambda: reader.create_bucket(Bucket=new_bucket_name())) == "AccessDenied"
    assert outcome(lambda: reader.delete_bucket(Bucket=data)) == "AccessDenied"
    bad_policy = json.dumps(doc({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}))
    assert outcome(lambda: reader.put_bucket_policy(Bucket=data, Policy=bad_policy)) == "AccessDenied"


def test_writeonly_key(server: ServerProcess, main, data: str) -> None:  # type: ignore[no-untyped-def]
    writer = client(server, WRITER)
    writer.put_object(Bucket=data, Key="w", Body=b"w")
    upload = writer.create_multipart_upload(Bucket=data, Key="big")
    part = writer.upload_part(Bucket=data, Key="big", UploadId=upload["UploadId"], PartNumber=1, Body=b"p")
    writer.complete_multipart_upload(
        Bucket=data,
        Key="big",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert main.get_object(Bucket=data, Key="big")["Body"].read() == b"p"
    assert outcome(lambda: writer.get_object(Bucket=data, Key="w")) == "AccessDenied"
    assert outcome(lambda: writer.list_objects_v2(Bucket=data)) == "AccessDenied"
    assert outcome(lambda: writer.delete_object(Bucket=data, Key="w")) == "AccessDenied"
    result = writer.delete_objects(Bucket=data, Delete={"Objects": [{"Key": "w"}]})
    assert [e["Code"] for e in result["Errors"]] == ["AccessDenied"]


def test_prefix_scoped_backup_key(server: ServerProcess, main) -> None:  # type: ignore[no-untyped-def]
    main.create_bucket(Bucket=BACKUPS)
    backup = client(server, BACKUP)
    backup.put_object(Bucket=BACKUPS, Key="host1/2026-12-01.tar", Body=b"t")
    assert main.get_object(Bucket=BACKUPS, Key="host1/2026-12-01.tar")["Body"].read() == b"t"
    assert outcome(lambda: backup.put_object(Bucket=BACKUPS, Key="host2/x", Body=b"t")) == "AccessDenied"
    assert outcome(lambda: backup.get_object(Bucket=BACKUPS, Key="host1/2026-12-01.tar")) == "AccessDenied"
    assert outcome(lambda: backup.delete_object(Bucket=BACKUPS, Key="host1/2026-12-01.tar")) == "AccessDenied"
    assert outcome(lambda: backup.list_objects_v2(Bucket=BACKUPS)) == "AccessDenied"
    other = new_bucket_name()
    main.create_bucket(Bucket=other)
    assert outcome(lambda: backup.put_object(Bucket=other, Key="host1/x", Body=b"t")) == "AccessDenied"
    assert outcome(lambda: backup.list_buckets()) == "AccessDenied"


def test_identity_deny_beats_bucket_policy_allow(server: ServerProcess, main, data: str) -> None:  # type: ignore[no-untyped-def]
    main.put_object(Bucket=data, Key="private/p", Body=b"p")
    everyone = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{data}/*"}
    main.put_bucket_policy(Bucket=data, Policy=json.dumps(doc(everyone)))
    denier = client(server, DENIER)
    assert denier.get_object(Bucket=data, Key="a")["Body"].read() == b"a"  # both allow
    assert outcome(lambda: denier.get_object(Bucket=data, Key="private/p")) == "AccessDenied"
    # The same bucket policy lets a user without an identity policy read it.
    assert client(server, ALT).get_object(Bucket=data, Key="private/p")["Body"].read() == b"p"


def test_cross_user_needs_both_policies(server: ServerProcess, main, data: str) -> None:  # type: ignore[no-untyped-def]
    """DENIER is another user: its identity policy allows s3:*, but in MAIN's bucket it needs
    the bucket policy too; and the bucket policy alone does not let a bounded user exceed its policy."""
    denier = client(server, DENIER)
    assert outcome(lambda: denier.get_object(Bucket=data, Key="a")) == "AccessDenied"
    writers = {"Effect": "Allow", "Principal": "*", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{data}/*"}
    main.put_bucket_policy(Bucket=data, Policy=json.dumps(doc(writers)))
    denier.put_object(Bucket=data, Key="from-denier", Body=b"d")
    # What it wrote it owns (no ownership controls: ObjectWriter), so its object's ACL lets it read
    # that one; MAIN's objects stay out of reach.
    assert denier.get_object(Bucket=data, Key="from-denier")["Body"].read() == b"d"
    assert outcome(lambda: denier.get_object(Bucket=data, Key="a")) == "AccessDenied"
    reader = client(server, OUTSIDE_READER)
    assert outcome(lambda: reader.put_object(Bucket=data, Key="from-reader", Body=b"r")) == "AccessDenied"


def test_bypass_governance_needs_the_permission(server: ServerProcess, main) -> None:  # type: ignore[no-untyped-def]
    name = new_bucket_name()
    main.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    until = datetime.now(UTC) + timedelta(days=1)
    version = main.put_object(
        Bucket=name, Key="locked", Body=b"l", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until
    )["VersionId"]
    nobypass = client(server, NOBYPASS)
    assert nobypass.get_object(Bucket=name, Key="locked")["Body"].read() == b"l"
    refused = outcome(
        lambda: nobypass.delete_object(Bucket=name, Key="locked", VersionId=version, BypassGovernanceRetention=True)
    )
    assert refused == "AccessDenied"
    assert main.head_object(Bucket=name, Key="locked", VersionId=version)["ContentLength"] == 1
    # The owner's key without an identity policy has the permission.
    main.delete_object(Bucket=name, Key="locked", VersionId=version, BypassGovernanceRetention=True)
    assert outcome(lambda: main.head_object(Bucket=name, Key="locked", VersionId=version)) == "404"


# ---------------------------------------------------------------------- the CLI and the config file
def _keys(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
    return subprocess.run(
        [sys.executable, "-m", "coffer", "keys", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )


def test_keys_add_and_set_policy(server: ServerProcess, data: str, tmp_path: Path) -> None:
    directory = str(server.data_dir)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc({"Effect": "Allow", "Action": "s3:Fly", "Resource": "*"})))
    common = ["--access-key", CLIKEY.access_key, "--secret-key", CLIKEY.secret_key, "--user-id", CLIKEY.user_id]
    refused = _keys("add", *common, "--policy", str(bad), "--data-dir", directory, cwd=tmp_path)
    assert refused.returncode != 0 and "not a valid identity policy" in refused.stderr
    assert "bad.json" in refused.stderr
    unknown = _keys("add", *common, "--policy", "nosuchpreset", "--data-dir", directory, cwd=tmp_path)
    assert unknown.returncode != 0 and "not a preset" in unknown.stderr
    added = _keys("add", *common, "--policy", "readonly", "--data-dir", directory, cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    cli = client(server, CLIKEY)
    eventually(lambda: cli.get_object(Bucket=data, Key="a"), "ok")
    assert outcome(lambda: cli.put_object(Bucket=data, Key="c", Body=b"c")) == "AccessDenied"
    listed = _keys("list", "--data-dir", directory, cwd=tmp_path)
    assert "POLICY" in listed.stdout
    changed = _keys("set-policy", CLIKEY.access_key, "none", "--data-dir", directory, cwd=tmp_path)
    assert changed.returncode == 0, changed.stderr
    eventually(lambda: cli.put_object(Bucket=data, Key="c", Body=b"c"), "ok")
    back = _keys("set-policy", CLIKEY.access_key, "writeonly", "--data-dir", directory, cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    eventually(lambda: cli.get_object(Bucket=data, Key="a"), "AccessDenied")
    assert _keys("set-policy", "AKIANOSUCHKEY", "none", "--data-dir", directory, cwd=tmp_path).returncode != 0


def test_bad_policy_in_config_is_a_startup_error(tmp_path: Path) -> None:
    broken = entry(READER, {"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Action": "s3:*"}]})
    with pytest.raises(RuntimeError) as exc:
        start_auth_server(tmp_path, credentials=[broken])
    assert "credentials[0].policy" in str(exc.value)
