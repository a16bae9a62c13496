"""The built-in key service (coffer/encryption/kms.py, keyring.py) and the `coffer kms` commands."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from coffer.cli import main
from coffer.config import ConfigError, load_settings
from coffer.encryption import keyring
from coffer.encryption.keyring import KeyringError, load_master_key, master_key_warning
from coffer.encryption.kms import (
    AWS_MANAGED_KEY,
    SSE_S3_KEY,
    InvalidCiphertext,
    InvalidKeyId,
    KeyDisabled,
    KeyManagementError,
    KeyNotFound,
    KeyService,
    LocalKeyService,
    inspect_wrapped,
    parse_key_ref,
)

CTX = {"bucket": "b", "key": "k"}
MASTER = bytes(range(32))


def service(tmp_path: Path, master: bytes = MASTER, recheck: float = 1.0) -> LocalKeyService:
    return LocalKeyService(tmp_path / "kms", master, recheck=recheck)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_round_trip_sse_s3_and_named_key(tmp_path: Path) -> None:
    kms: KeyService = service(tmp_path)
    dk = kms.generate_data_key(None, CTX)
    assert len(dk.plaintext) == 32 and dk.key_version == 1
    assert kms.decrypt_data_key(dk.wrapped, dict(CTX)) == dk.plaintext
    assert dk.plaintext not in dk.wrapped
    assert kms.describe_key(SSE_S3_KEY).arn == dk.key_id
    info = kms.create_key(alias="app", description="for the app")
    assert info.alias == "alias/app" and info.enabled and info.arn.endswith(f":key/{info.key_id}")
    dk2 = kms.generate_data_key("alias/app", CTX)
    assert dk2.key_id == info.arn and inspect_wrapped(dk2.wrapped).key_id == info.key_id
    assert kms.decrypt_data_key(dk2.wrapped, CTX) == dk2.plaintext
    assert dk2.plaintext != dk.plaintext


def test_wrong_context_tampering_and_other_key_refused(tmp_path: Path) -> None:
    kms = service(tmp_path)
    dk = kms.generate_data_key(None, CTX)
    for context in ({"bucket": "b", "key": "other"}, {}, {**CTX, "extra": "x"}):
        with pytest.raises(InvalidCiphertext):
            kms.decrypt_data_key(dk.wrapped, context)
    for at in (len(dk.wrapped) - 1, len(dk.wrapped) - 40):
        tampered = bytearray(dk.wrapped)
        tampered[at] ^= 1
        with pytest.raises(InvalidCiphertext):
            kms.decrypt_data_key(bytes(tampered), CTX)
    with pytest.raises(InvalidCiphertext):
        kms.decrypt_data_key(dk.wrapped[:-1], CTX)
    with pytest.raises(InvalidCiphertext):
        kms.decrypt_data_key(b"garbage", CTX)
    # The same blob relabelled with another key id (same length): the id is authenticated.
    other = kms.create_key(alias="other")
    own = inspect_wrapped(dk.wrapped).key_id
    moved = dk.wrapped.replace(own.encode(), other.key_id.encode())
    with pytest.raises(InvalidCiphertext):
        kms.decrypt_data_key(moved, CTX)
    # A version that does not exist.
    bumped = bytearray(dk.wrapped)
    bumped[5 + len(own) + 3] = 9
    with pytest.raises(InvalidCiphertext):
        kms.decrypt_data_key(bytes(bumped), CTX)
    assert InvalidCiphertext.code == "KMS.InvalidCiphertextException" and InvalidCiphertext.status == 400


def test_rotation_keeps_old_wraps_and_rewrap(tmp_path: Path) -> None:
    kms = service(tmp_path)
    old = kms.generate_data_key(None, CTX)
    assert kms.rewrap(old.wrapped, CTX) is old.wrapped  # already the newest version
    assert kms.rotate().versions == 2
    new = kms.generate_data_key(None, CTX)
    assert (old.key_version, new.key_version) == (1, 2)
    assert kms.decrypt_data_key(old.wrapped, CTX) == old.plaintext
    assert kms.decrypt_data_key(new.wrapped, CTX) == new.plaintext
    rewrapped = kms.rewrap(old.wrapped, CTX)
    assert inspect_wrapped(rewrapped).key_version == 2
    assert kms.decrypt_data_key(rewrapped, CTX) == old.plaintext
    with pytest.raises(InvalidCiphertext):
        kms.rewrap(old.wrapped, {"bucket": "x"})
    # Named keys rotate on their own.
    named = kms.create_key(alias="n")
    assert kms.rotate("alias/n").versions == 2 and kms.describe_key(SSE_S3_KEY).versions == 2
    assert kms.describe_key(named.key_id).versions == 2


def test_disabled_key_refuses_generate_decrypt_and_rewrap(tmp_path: Path) -> None:
    kms = service(tmp_path)
    info = kms.create_key(alias="d")
    dk = kms.generate_data_key(info.key_id, CTX)
    assert not kms.disable_key("alias/d").enabled
    with pytest.raises(KeyDisabled) as caught:
        kms.generate_data_key(info.arn, CTX)
    assert caught.value.code == "KMS.DisabledException" and caught.value.status == 400
    with pytest.raises(KeyDisabled):
        kms.decrypt_data_key(dk.wrapped, CTX)
    with pytest.raises(KeyDisabled):
        kms.rewrap(dk.wrapped, CTX)
    assert kms.enable_key(info.key_id).enabled
    assert kms.decrypt_data_key(dk.wrapped, CTX) == dk.plaintext
    kms.generate_data_key(None, CTX)
    for managed in (SSE_S3_KEY, AWS_MANAGED_KEY):
        with pytest.raises(KeyManagementError):
            kms.disable_key(managed)


def test_key_references_as_aws_clients_send_them(tmp_path: Path) -> None:
    kms = LocalKeyService(tmp_path / "kms", MASTER, region="eu-west-1")
    info = kms.create_key(alias="team/app")
    account = "000000000000"
    assert info.arn == f"arn:aws:kms:eu-west-1:{account}:key/{info.key_id}"
    for ref in (
        info.key_id,
        info.key_id.upper(),
        "alias/team/app",
        info.arn,
        f"arn:aws:kms:us-east-1:{account}:key/{info.key_id}",  # any region
        f"arn:aws:kms:eu-west-1:{account}:alias/team/app",
    ):
        assert kms.describe_key(ref).key_id == info.key_id, ref
    # SSE-KMS without a key id uses aws/s3, made on first use.
    managed = kms.describe_key(AWS_MANAGED_KEY)
    assert managed.managed and kms.describe_key(f"arn:aws:kms:eu-west-1:{account}:alias/aws/s3") == managed
    for bad in ("aws/s3", "app", "", "key/1234", "arn:aws:kms:eu-west-1:123:key/x", "alias/", "alias/a b"):
        with pytest.raises(InvalidKeyId, match="Invalid keyId"):
            kms.describe_key(bad)
    assert InvalidKeyId.code == KeyNotFound.code == "KMS.NotFoundException"
    missing = "0f3c2d8e-1111-4222-8333-444455556666"
    for ref in (
        missing,
        "alias/nope",
        f"arn:aws:kms:eu-west-1:{account}:key/{missing}",
        f"arn:aws:kms:eu-west-1:123456789012:key/{info.key_id}",  # another account
        "mrk-" + "a" * 32,
    ):
        with pytest.raises(KeyNotFound):
            kms.generate_data_key(ref, CTX)
    with pytest.raises(KeyNotFound, match=f"arn:aws:kms:eu-west-1:{account}:key/{missing}"):
        kms.describe_key(missing)
    assert parse_key_ref("alias/x").alias == "alias/x"


def test_create_key_aliases(tmp_path: Path) -> None:
    kms = service(tmp_path)
    kms.create_key(alias="alias/one")
    with pytest.raises(KeyManagementError, match="already exists"):
        kms.create_key(alias="one")
    for reserved in ("alias/aws/mine", "coffer/sse-s3", "a b"):
        with pytest.raises(KeyManagementError):
            kms.create_key(alias=reserved)
    assert kms.create_key().alias == ""
    assert [i.alias for i in kms.list_keys()] == ["alias/one", ""]


def test_file_modes_and_master_key_generated_once(tmp_path: Path) -> None:
    master = load_master_key(tmp_path)
    assert master.source == "generated" and master.beside_data
    path = tmp_path / "kms" / "master.key"
    assert master.path == path and mode(path) == 0o600 and mode(tmp_path / "kms") == 0o700
    assert len(base64.b64decode(path.read_text())) == 32
    warning = master_key_warning(master)
    assert warning is not None and str(path) in warning and "stolen" in warning
    again = load_master_key(tmp_path)
    assert again.key == master.key and again.source == "data-dir" and master_key_warning(again)
    kms = LocalKeyService(keyring.kms_dir(tmp_path), again)
    kms.generate_data_key(None, CTX)
    assert mode(tmp_path / "kms" / "keyring.json") == 0o600
    assert MASTER.hex() not in repr(master) and master.key.hex() not in repr(master)


def test_master_key_sources(tmp_path: Path) -> None:
    text = base64.b64encode(MASTER).decode()
    from_value = load_master_key(tmp_path, value=text)
    assert from_value.key == MASTER and from_value.source == "setting" and master_key_warning(from_value) is None
    assert not (tmp_path / "kms" / "master.key").exists()
    key_file = tmp_path / "elsewhere.key"
    key_file.write_text(text + "\n")
    assert load_master_key(tmp_path, key_file=key_file).key == MASTER
    key_file.write_bytes(MASTER)  # raw bytes too
    assert load_master_key(tmp_path, key_file=key_file).source == "file"
    for bad in ("short", base64.b64encode(b"x" * 16).decode()):
        with pytest.raises(KeyringError):
            load_master_key(tmp_path, value=bad)
    with pytest.raises(KeyringError, match="cannot read"):
        load_master_key(tmp_path, key_file=tmp_path / "missing")


def test_settings_env_master_key_overrides_the_data_dir_file(tmp_path: Path) -> None:
    generated = LocalKeyService.from_settings(load_settings(overrides={"data_dir": str(tmp_path)}, environ={}))
    assert generated.master.source == "generated"
    env = {"COFFER_KMS_MASTER_KEY": base64.b64encode(MASTER).decode(), "COFFER_DATA_DIR": str(tmp_path / "d2")}
    settings = load_settings(environ=env)
    kms = LocalKeyService.from_settings(settings)
    assert kms.master.key == MASTER and kms.master_key_warning() is None
    assert not (tmp_path / "d2" / "kms" / "master.key").exists()
    with pytest.raises(ConfigError, match="kms_master_key"):
        load_settings(environ={"COFFER_KMS_MASTER_KEY": "nope"})


def test_keyring_useless_without_its_master_key(tmp_path: Path) -> None:
    kms = service(tmp_path)
    dk = kms.generate_data_key(None, CTX)
    text = (tmp_path / "kms" / "keyring.json").read_text()
    assert base64.b64encode(dk.plaintext).decode() not in text
    other = service(tmp_path, bytes(32))
    with pytest.raises(KeyringError, match="another master key"):
        other.check()
    with pytest.raises(KeyringError):
        other.decrypt_data_key(dk.wrapped, CTX)
    with pytest.raises(KeyringError):
        other.create_key(alias="x")  # and it must not overwrite the keyring
    assert service(tmp_path).decrypt_data_key(dk.wrapped, CTX) == dk.plaintext
    # Key material swapped between keys is refused, not used.
    doc = json.loads(text)
    doc["keys"].append({**doc["keys"][0], "id": "0f3c2d8e-1111-4222-8333-444455556666", "alias": ""})
    (tmp_path / "kms" / "keyring.json").write_text(json.dumps(doc))
    with pytest.raises(KeyringError):
        service(tmp_path).check()


def test_two_services_on_one_directory_see_each_other(tmp_path: Path) -> None:
    a, b = service(tmp_path, recheck=0), service(tmp_path, recheck=0)
    assert a.list_keys() == b.list_keys() == []
    made = a.create_key(alias="shared")
    dk = b.generate_data_key("alias/shared", CTX)
    assert a.decrypt_data_key(dk.wrapped, CTX) == dk.plaintext
    b.disable_key(made.key_id)
    with pytest.raises(KeyDisabled):
        a.decrypt_data_key(dk.wrapped, CTX)
    b.enable_key(made.key_id)
    a.rotate("alias/shared")
    assert b.generate_data_key("alias/shared", CTX).key_version == 2
    # Both made the SSE-S3 key's first use at once: one key, not two.
    a.describe_key(SSE_S3_KEY)
    assert b.describe_key(SSE_S3_KEY) == a.describe_key(SSE_S3_KEY)
    assert len([i for i in a.list_keys() if i.alias == SSE_S3_KEY]) == 1


def test_per_object_calls_see_another_process_change_within_recheck(tmp_path: Path) -> None:
    # generate/decrypt look at the keyring file at most every `recheck` seconds (a stat on the
    # event loop is costly); management calls and keys unknown so far always look.
    a, b = service(tmp_path, recheck=0.2), service(tmp_path, recheck=0)
    made = b.create_key(alias="shared")
    dk = a.generate_data_key("alias/shared", CTX)  # unknown to a so far: read at once
    b.rotate("alias/shared")
    newer = b.generate_data_key("alias/shared", CTX)
    assert newer.key_version == 2
    assert a.decrypt_data_key(newer.wrapped, CTX) == newer.plaintext  # a version a has not seen: read at once
    b.disable_key(made.key_id)
    deadline = time.monotonic() + 10
    while True:
        try:
            a.decrypt_data_key(dk.wrapped, CTX)
        except KeyDisabled:
            break
        assert time.monotonic() < deadline, "the disabled key was never noticed"
        time.sleep(0.05)
    with pytest.raises(KeyDisabled):
        a.generate_data_key("alias/shared", CTX)
    b.enable_key(made.key_id)
    assert a.describe_key(made.key_id).enabled  # management calls are always fresh


# ----------------------------------------------------------------------------- the CLI
def kms_cli(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    runner = CliRunner()
    result = runner.invoke(main, ["kms", *args, "--data-dir", str(data_dir)], env=env or {})
    return result.exit_code, result.output


def test_cli_manages_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("COFFER_")]:
        monkeypatch.delenv(name)
    code, out = kms_cli(tmp_path / "missing", "list-keys")
    assert code != 0 and "does not exist" in out
    assert "--create" not in out  # only commands that have the option suggest it
    code, out = kms_cli(tmp_path, "create-key", "--alias", "app", "--description", "the app")
    assert code == 0 and "created" in out and "alias/app" in out, out
    assert "warning: the KMS master key is stored beside the data" in out
    code, out = kms_cli(tmp_path, "list-keys")
    assert code == 0 and "alias/app" in out and "the app" in out and "enabled" in out
    key_id = LocalKeyService.from_settings(load_settings(overrides={"data_dir": str(tmp_path)}, environ={}))
    info = key_id.describe_key("alias/app")
    code, out = kms_cli(tmp_path, "disable-key", info.arn)
    assert code == 0 and "disabled" in out
    assert not key_id.describe_key("alias/app").enabled
    code, out = kms_cli(tmp_path, "enable-key", "alias/app")
    assert code == 0 and key_id.describe_key(info.key_id).enabled
    code, out = kms_cli(tmp_path, "rotate")
    assert code == 0 and "rotated" in out and SSE_S3_KEY in out and "version 2" in out
    code, out = kms_cli(tmp_path, "rotate", "alias/app")
    assert code == 0 and key_id.describe_key("alias/app").versions == 2
    code, out = kms_cli(tmp_path, "disable-key", "nope")
    assert code != 0 and "KMS.NotFoundException" in out
    code, out = kms_cli(tmp_path, "create-key", "--alias", "app")
    assert code != 0 and "already exists" in out
    wrong = {"COFFER_KMS_MASTER_KEY": base64.b64encode(bytes(32)).decode()}
    code, out = kms_cli(tmp_path, "list-keys", env=wrong)
    assert code != 0 and "another master key" in out


def test_canonical_context_fast_path_is_the_general_encoding() -> None:
    """The one-entry context S3 makes (the object's ARN) takes a shortcut: the same bytes."""
    import struct

    from coffer.encryption.kms import _canonical_context

    def general(context: dict[str, str]) -> bytes:
        out = b""
        for name in sorted(context):
            for part in (name.encode(), context[name].encode()):
                out += struct.pack(">I", len(part)) + part
        return out

    for context in (
        {"aws:s3:arn": "arn:aws:s3:::bucket/clé/ü"},
        {"aws:s3:arn": ""},
        {"other": "x"},
        {"aws:s3:arn": "arn:aws:s3:::b/k", "project": "p"},
        {},
    ):
        assert _canonical_context(context) == general(context)
