"""The memory engine's settings: flags, env and config file, and what they refuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from coffer.config import ConfigError, load_settings, render_config_yaml
from coffer.server.app import build_engine
from coffer.storage.disk import DiskEngine
from coffer.storage.memory import MemoryEngine


def test_env_file_and_flags_select_memory(tmp_path: Path) -> None:
    env = {"COFFER_STORAGE": "memory", "COFFER_TTL_REAPER_INTERVAL": "0.5", "COFFER_MEMORY_PERSISTENCE": "true"}
    settings = load_settings(environ=env)
    assert (settings.storage, settings.ttl_reaper_interval, settings.memory_persistence) == ("memory", 0.5, True)
    config = tmp_path / "config.yaml"
    config.write_text("storage: memory\nmax_memory: 1048576\nwal_batch_interval_ms: 2.5\n")
    settings = load_settings(config, overrides={"default_ttl_seconds": 60}, environ={})
    assert (settings.max_memory, settings.wal_batch_interval_ms, settings.default_ttl_seconds) == (1048576, 2.5, 60)
    assert settings.max_put_size() == 1048576
    engine = build_engine(settings)
    assert isinstance(engine, MemoryEngine)
    assert engine.max_object_size == 1048576 and engine.persistence_dir is None
    assert isinstance(build_engine(load_settings(environ={})), DiskEngine)


def test_persistence_dir_defaults_under_data_dir(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={"storage": "memory", "memory_persistence": True, "data_dir": str(tmp_path)}, environ={}
    )
    engine = build_engine(settings)
    assert isinstance(engine, MemoryEngine)
    assert engine.persistence_dir == tmp_path / "memory"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"storage": "memory", "workers": 2}, "workers must be 1"),
        ({"max_memory": 0}, "max_memory"),
        ({"ttl_reaper_interval": 0}, "ttl_reaper_interval"),
        ({"max_buckets": -1}, "max_buckets"),
        ({"wal_batch_max": 0}, "wal_batch_max"),
        ({"storage": "tape"}, "storage must be one of"),
    ],
)
def test_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(overrides=overrides, environ={})


def test_init_documents_every_memory_setting() -> None:
    text = render_config_yaml()
    for name in ("max_memory", "default_ttl_seconds", "ttl_reaper_interval", "max_buckets", "max_objects_per_bucket",
                 "memory_persistence", "memory_persistence_dir", "wal_batch_max", "wal_batch_interval_ms",
                 "snapshot_interval", "COFFER_MAX_MEMORY"):  # fmt: skip
        assert name in text
    assert "One of: disk, memory." in text
