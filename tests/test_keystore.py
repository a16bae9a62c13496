"""The key file behind `coffer keys` and the credential settings (unit tests)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from coffer.config import ConfigError, Settings, load_settings
from coffer.keystore import KeyFile, KeyStoreError, default_user_id
from coffer.server.auth.credentials import CredentialStore
from coffer.server.auth.principal import DEFAULT_OWNER


def test_add_list_remove(tmp_path: Path) -> None:
    keys = KeyFile(tmp_path)
    entry = keys.add("AKIAONE", "secret-one-123", display_name="One", token="bearer-token-value")
    assert entry.user_id == default_user_id("AKIAONE")
    assert [k.access_key for k in keys.read()] == ["AKIAONE"]
    assert keys.read()[0].token_sha256 and "bearer-token-value" not in (tmp_path / "keys.json").read_text()
    assert (tmp_path / "keys.json").stat().st_mode & 0o777 == 0o600
    with pytest.raises(KeyStoreError, match="already exists"):
        keys.add("AKIAONE", "another-secret")
    with pytest.raises(KeyStoreError, match="already exists"):
        keys.add("ROOTKEY", "another-secret", taken={"ROOTKEY"})
    for bad in ("a", "with space", "slash/key", "é-key"):
        with pytest.raises(KeyStoreError):
            keys.add(bad, "long-enough-secret")
    with pytest.raises(KeyStoreError, match="at least 8"):
        keys.add("AKIATWO", "short")
    assert keys.remove("AKIAONE") and not keys.remove("AKIAONE")
    assert keys.read() == []


def test_concurrent_adds_lose_nothing(tmp_path: Path) -> None:
    keys = [KeyFile(tmp_path) for _ in range(8)]
    threads = [
        threading.Thread(target=lambda i=i: [keys[i].add(f"AKIA{i}X{j}", "secret-0123456") for j in range(5)])
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(KeyFile(tmp_path).read()) == 40


def test_corrupt_key_file_is_reported_and_previous_keys_kept(tmp_path: Path) -> None:
    KeyFile(tmp_path).add("AKIAKEEP", "secret-keep-123")
    store = CredentialStore(Settings(data_dir=str(tmp_path)).validate())
    assert store.lookup("AKIAKEEP") is not None
    (tmp_path / "keys.json").write_text("{ not json")
    store.refresh(force=True)
    assert store.lookup("AKIAKEEP") is not None
    with pytest.raises(KeyStoreError):
        KeyFile(tmp_path).read()


def test_credential_settings(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("credentials:\n  - {access_key: AKIAA, secret_key: secret-a-123, user_id: ua, display_name: A}\n")
    settings = load_settings(config, environ={"COFFER_ACCESS_KEY": "ROOT", "COFFER_SECRET_KEY": "root-secret"})
    assert "root-secret" not in repr(settings) and "secret-a-123" not in repr(settings)
    store = CredentialStore(settings)
    root, alt = store.lookup("ROOT"), store.lookup("AKIAA")
    assert root is not None and root.principal.id == DEFAULT_OWNER.id
    assert alt is not None and (alt.principal.id, alt.principal.display_name) == ("ua", "A")
    assert store.display_name("ua") == "A"

    env = load_settings(environ={"COFFER_CREDENTIALS": '[{"access_key": "AKIAB", "secret_key": "secret-b-123"}]'})
    assert env.credentials == [{"access_key": "AKIAB", "secret_key": "secret-b-123"}]

    for bad in (
        {"COFFER_ACCESS_KEY": "only-the-key"},
        {"COFFER_CREDENTIALS": '[{"access_key": "AKIAB"}]'},
        {"COFFER_CREDENTIALS": '[{"access_key": "AKIAB", "secret_key": "s", "colour": "red"}]'},
        {"COFFER_CREDENTIALS": "[not: valid: yaml"},
        {"COFFER_TLS_CERT": "cert.pem"},
        {"COFFER_AUTH": "maybe"},
    ):
        with pytest.raises(ConfigError) as exc:
            load_settings(environ=bad)
        assert "secret-b-123" not in str(exc.value)


def test_identity_policies_are_stored_compiled_and_validated(tmp_path: Path) -> None:
    from coffer.server.access.identity import PRESETS

    key_file = KeyFile(tmp_path)
    key_file.add("AKIAREAD", "secret-key-1", policy=PRESETS["readonly"])
    key_file.add("AKIAFULL", "secret-key-2")
    store = CredentialStore(Settings(data_dir=str(tmp_path)).validate())
    reader, full = store.lookup("AKIAREAD"), store.lookup("AKIAFULL")
    assert reader is not None and reader.principal.policy is not None
    assert reader.principal.policy.text == PRESETS["readonly"]
    assert full is not None and full.principal.policy is None
    assert key_file.set_policy("AKIAREAD", "")
    assert not key_file.set_policy("AKIANONE", "")
    store.refresh(force=True)
    reader = store.lookup("AKIAREAD")
    assert reader is not None and reader.principal.policy is None
    # A policy edited into the file by hand that does not parse disables the key (never less restricted).
    key_file.set_policy("AKIAREAD", '{"Statement": "nope"}')
    store.refresh(force=True)
    assert store.lookup("AKIAREAD") is None and store.lookup("AKIAFULL") is not None


def test_credential_policies_in_settings(tmp_path: Path) -> None:
    base = {"access_key": "AKIAX", "secret_key": "secret-key-x"}
    settings = Settings(data_dir=str(tmp_path), credentials=[{**base, "policy": "writeonly"}]).validate()
    cred = CredentialStore(settings).lookup("AKIAX")
    assert cred is not None and cred.principal.policy is not None
    as_mapping = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    settings = Settings(data_dir=str(tmp_path), credentials=[{**base, "policy": as_mapping}]).validate()
    assert '"s3:*"' in settings.credentials[0]["policy"]
    with pytest.raises(ConfigError, match=r"credentials\[0\]\.policy: not a valid identity policy"):
        Settings(
            data_dir=str(tmp_path), credentials=[{**base, "policy": {"Statement": [{"Effect": "Maybe"}]}}]
        ).validate()
    with pytest.raises(ConfigError, match=r"credentials\[0\]\.policy"):
        Settings(data_dir=str(tmp_path), credentials=[{**base, "policy": 7}]).validate()
