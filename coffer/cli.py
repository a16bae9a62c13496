"""The ``coffer`` command: serve, status, init, keys, kms, fsck, rebuild-index, bench, mirror."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from coffer import __version__
from coffer.config import ConfigError, Settings, env_name, load_settings, render_config_yaml
from coffer.mirror.command import mirror as _mirror_group


def _setting_options(fn: Any) -> Any:
    """One --flag per setting, generated from the typed definition in coffer.config."""
    defaults = Settings()
    for f in reversed(fields(Settings)):
        default = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata['help']} [env {env_name(f.name)}; default {default!r}]"
        kwargs: dict[str, Any] = {"default": None, "help": help_text, "show_default": False}
        if f.metadata.get("choices"):
            kwargs["type"] = click.Choice(f.metadata["choices"])
        elif isinstance(default, bool):
            kwargs["type"] = bool
        elif isinstance(default, int):
            kwargs["type"] = int
        elif isinstance(default, float):
            kwargs["type"] = float
        elif isinstance(default, list) and "JSON" not in help_text:
            kwargs["help"] = help_text + " Comma-separated."
        fn = click.option(flag, f.name, **kwargs)(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="coffer")
def main() -> None:
    """Coffer: an S3-compatible object storage server.

    `coffer serve` stores data durably under ./coffer-data (SQLite metadata +
    files) and listens on 127.0.0.1:9000; point any S3 client at it.
    Settings come from flags, then COFFER_* environment variables, then the
    config file (--config or COFFER_CONFIG), then defaults; `coffer init`
    writes a commented config.yaml listing every setting.
    """


@main.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML config file (see `coffer init`). [env COFFER_CONFIG]",
)
@_setting_options
def serve(config_file: str | None, **overrides: Any) -> None:
    """Start the S3 server."""
    try:
        settings = load_settings(config_file, overrides)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    from coffer.server.runner import StartupError, run

    try:
        code = run(settings)
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


@main.command()
@click.option(
    "--path",
    "path",
    type=click.Path(dir_okay=False),
    default="config.yaml",
    show_default=True,
    help="Where to write the file.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: str, force: bool) -> None:
    """Write a fully commented config.yaml holding every setting at its default.

    The file is readable by its owner only (0600): it is where access and secret keys go.
    """
    target = Path(path)
    if target.exists() and not force:
        raise click.UsageError(f"{target} exists (use --force to overwrite)")
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchmod(fd, 0o600)  # an existing file (--force) keeps its mode otherwise
            out.write(render_config_yaml())
    except OSError as exc:
        raise click.ClickException(f"cannot write {target}: {exc.strerror}") from None
    click.echo(f"wrote {target} (mode 0600: it may hold secret keys)")


def _keys_settings(config_file: str | None, data_dir: str | None) -> Settings:
    try:
        return load_settings(config_file, {"data_dir": data_dir})
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _data_dir(settings: Settings, create: bool | None = None) -> Path:
    """The data directory the keys command works on, absolute; refused when it does not exist
    (unless ``create``; None: the command has no --create): a typo or the wrong working directory
    must not start a new key file."""
    path = Path(settings.data_dir).absolute()
    if path.exists() and not path.is_dir():
        raise click.ClickException(f"data directory {path} is not a directory")
    if not path.exists():
        if not create:
            hint = ", or add --create to start a new one there" if create is not None else ""
            raise click.ClickException(
                f"data directory {path} does not exist: pass the server's --data-dir (or --config){hint}"
            )
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            raise click.ClickException(f"cannot create data directory {path}: {exc.strerror}") from None
        click.echo(f"created data directory {path}")
    return path


def _auth_state(settings: Settings) -> str:
    """What a server with these settings and this data directory does about signatures
    (the same rule as the server's, coffer.server.auth.credentials.signatures_required)."""
    from coffer.server.auth.credentials import CredentialStore, signatures_required

    store = CredentialStore(settings)
    if settings.auth == "off":
        return "authentication is off (auth: off): the server accepts every request unsigned and ignores these keys"
    if not signatures_required(settings.auth, store):
        return "no key pairs: the server runs open (development mode); `coffer keys add` turns authentication on"
    if store.count() == 0:
        why = "auth: on" if settings.auth == "on" else "a key file exists, so authentication stays on"
        return f"no key pairs: the server refuses every request ({why}); add one with `coffer keys add`"
    return f"signed requests required: {store.count()} key pair(s)"


_config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML config file, as for `serve` (settings-defined keys are listed too). [env COFFER_CONFIG]",
)
_data_dir_option = click.option(
    "--data-dir", default=None, help="Data directory holding keys.json, as for `serve`. [env COFFER_DATA_DIR]"
)


def _echo_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """Rows under a header, in columns as wide as their widest cell."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@main.group()
def keys() -> None:
    """Manage access key pairs kept in the data directory (keys.json).

    A running server picks up added and removed keys at once, without a
    restart. Secret keys are never printed. Key pairs can also come from the
    settings (access_key/secret_key, credentials list); those are changed in
    the config file or environment instead.

    Buckets created while the server runs open belong to the root user. The
    root key pair from the settings is that user; otherwise the first pair
    added here becomes it (any pair added while no pair is the root user),
    unless --user-id names another user.
    """


@keys.command("add")
@click.option("--access-key", required=True, help="Access key id (3-128 letters, digits, '-', '_', '.').")
@click.option(
    "--secret-key",
    prompt=True,
    hide_input=True,
    help="Secret key (at least 8 characters); '-' reads it from standard input; prompted for when omitted.",
)
@click.option(
    "--user-id",
    default="",
    help="User (Owner) id the key belongs to; default: the root user when no key pair is the root user yet "
    "(it owns the buckets created while the server ran open), else an id derived from the key.",
)
@click.option("--display-name", default="", help="User display name; default the access key (root user: 'coffer').")
@click.option("--token", default="", help="Also accept this bearer token for the user (stored hashed).")
@click.option(
    "--policy",
    "policy_source",
    default="none",
    help="Identity policy bounding what the key may do: a JSON policy file or a preset "
    "(readonly, readwrite, writeonly); default none (full access to the user's own buckets). See docs/security.md.",
)
@click.option("--create", is_flag=True, help="Create the data directory if it does not exist yet.")
@_config_option
@_data_dir_option
def keys_add(
    access_key: str,
    secret_key: str,
    user_id: str,
    display_name: str,
    token: str,
    policy_source: str,
    create: bool,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Add a key pair."""
    policy = _policy_text(policy_source)
    from coffer.keystore import KeyFile, KeyStoreError
    from coffer.server.auth.credentials import settings_credentials
    from coffer.server.auth.principal import DEFAULT_OWNER

    settings = _keys_settings(config_file, data_dir)
    directory = _data_dir(settings, create=create)
    if secret_key == "-":
        secret_key = sys.stdin.readline().rstrip("\r\n")
    defined = [cred for cred, _ in settings_credentials(settings)]
    root_held = any(cred.principal.id == DEFAULT_OWNER.id for cred in defined)
    key_file = KeyFile(directory)
    try:
        entry = key_file.add(
            access_key,
            secret_key,
            user_id=user_id,
            display_name=display_name,
            token=token,
            policy=policy,
            taken={cred.access_key for cred in defined},
            root=None if root_held else (DEFAULT_OWNER.id, DEFAULT_OWNER.display_name),
        )
    except KeyStoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"added {entry.access_key} to {key_file.path} (user {entry.user_id}, {entry.display_name})")
    if policy:
        click.echo(f"{entry.access_key} is limited by its identity policy ({policy_source})")
    if entry.user_id == DEFAULT_OWNER.id:
        click.echo(f"{entry.access_key} is the root user: it owns the buckets created while the server ran open")
    click.echo(_auth_state(settings))


def _policy_text(source: str) -> str:
    """The identity policy of a --policy argument (preset, file or none), validated; a usage error otherwise."""
    from coffer.server.access.identity import PolicySourceError, resolve_policy

    try:
        return resolve_policy(source)
    except PolicySourceError as exc:
        raise click.BadParameter(str(exc), param_hint="--policy") from None


@keys.command("set-policy")
@click.argument("access_key")
@click.argument("policy_source", metavar="FILE|PRESET|none")
@_config_option
@_data_dir_option
def keys_set_policy(access_key: str, policy_source: str, config_file: str | None, data_dir: str | None) -> None:
    """Set the identity policy of ACCESS_KEY: a JSON policy file, a preset (readonly, readwrite,
    writeonly) or none (full access to the user's own buckets). A running server applies it at once."""
    from coffer.keystore import KeyFile, KeyStoreError
    from coffer.server.auth.credentials import settings_credentials

    policy = _policy_text(policy_source)
    settings = _keys_settings(config_file, data_dir)
    key_file = KeyFile(_data_dir(settings))
    try:
        changed = key_file.set_policy(access_key, policy)
    except KeyStoreError as exc:
        raise click.ClickException(str(exc)) from None
    if changed:
        click.echo(f"{access_key}: identity policy {'removed' if not policy else 'set (' + policy_source + ')'}")
        return
    if any(cred.access_key == access_key for cred, _ in settings_credentials(settings)):
        raise click.ClickException(
            f"{access_key} is defined in the settings (config file or environment): set its policy there"
        )
    raise click.ClickException(f"no key pair {access_key} in {key_file.path}")


@keys.command("list")
@_config_option
@_data_dir_option
def keys_list(config_file: str | None, data_dir: str | None) -> None:
    """List key pairs (never their secrets) and whether the server requires signatures."""
    from coffer.keystore import KeyFile, KeyStoreError
    from coffer.server.auth.credentials import settings_credentials

    settings = _keys_settings(config_file, data_dir)
    key_file = KeyFile(_data_dir(settings))
    rows = [
        (
            cred.access_key,
            cred.principal.id,
            cred.principal.display_name,
            "settings",
            "yes" if token else "",
            "yes" if cred.principal.policy is not None else "",
        )
        for cred, token in settings_credentials(settings)
    ]
    try:
        stored = key_file.read()
    except KeyStoreError as exc:
        raise click.ClickException(str(exc)) from None
    rows += [
        (
            k.access_key,
            k.user_id,
            k.display_name,
            "keys.json",
            "yes" if k.token_sha256 else "",
            "yes" if k.policy else "",
        )
        for k in stored
    ]
    click.echo(f"key file {key_file.path}")
    click.echo(_auth_state(settings))
    if not rows:
        return
    _echo_table(("ACCESS KEY", "USER ID", "DISPLAY NAME", "SOURCE", "TOKEN", "POLICY"), rows)


@keys.command("remove")
@click.argument("access_key")
@_config_option
@_data_dir_option
def keys_remove(access_key: str, config_file: str | None, data_dir: str | None) -> None:
    """Remove the key pair ACCESS_KEY."""
    from coffer.keystore import KeyFile, KeyStoreError
    from coffer.server.auth.credentials import settings_credentials

    settings = _keys_settings(config_file, data_dir)
    key_file = KeyFile(_data_dir(settings))
    try:
        removed = key_file.remove(access_key)
    except KeyStoreError as exc:
        raise click.ClickException(str(exc)) from None
    if removed:
        click.echo(f"removed {access_key} from {key_file.path}")
        click.echo(_auth_state(settings))
        return
    if any(cred.access_key == access_key for cred, _ in settings_credentials(settings)):
        raise click.ClickException(
            f"{access_key} is defined in the settings (config file or environment): remove it there"
        )
    raise click.ClickException(f"no key pair {access_key} in {key_file.path}")


_kms_data_dir_option = click.option(
    "--data-dir", default=None, help="Data directory holding kms/keyring.json, as for `serve`. [env COFFER_DATA_DIR]"
)
_kms_config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML config file, as for `serve` (for the data directory and the master key). [env COFFER_CONFIG]",
)


@main.group()
def kms() -> None:
    """Manage the built-in key service of server-side encryption (data_dir/kms/).

    Keys are named by id (a UUID), alias/NAME, or their ARN. The master key comes from
    kms_master_key (COFFER_KMS_MASTER_KEY), kms_master_key_file, else data_dir/kms/master.key
    (generated on first use). A running server picks up changes at once. See docs/encryption.md ("Keys").
    """


def _key_service(config_file: str | None, data_dir: str | None) -> Any:
    from coffer.encryption.keyring import KeyringError
    from coffer.encryption.kms import LocalKeyService

    settings = _keys_settings(config_file, data_dir)
    _data_dir(settings)
    try:
        service = LocalKeyService.from_settings(settings)
        service.check()
    except KeyringError as exc:
        raise click.ClickException(str(exc)) from None
    warning = service.master_key_warning()
    if warning:
        click.echo(f"warning: {warning}", err=True)
    return service


def _kms_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    from coffer.encryption.keyring import KeyringError
    from coffer.encryption.kms import KeyServiceError

    try:
        return fn(*args, **kwargs)
    except KeyServiceError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None
    except KeyringError as exc:
        raise click.ClickException(str(exc)) from None


def _echo_key(info: Any, what: str) -> None:
    alias = f" ({info.alias})" if info.alias else ""
    click.echo(f"{what} {info.key_id}{alias}: {info.arn}, {'enabled' if info.enabled else 'disabled'}, "
               f"version {info.versions}")  # fmt: skip


@kms.command("create-key")
@click.option("--alias", default="", help="Alias, 'alias/NAME' or NAME (letters, digits, '/', '_', '-').")
@click.option("--description", default="", help="Free text shown by list-keys.")
@_kms_config_option
@_kms_data_dir_option
def kms_create_key(alias: str, description: str, config_file: str | None, data_dir: str | None) -> None:
    """Create a key for SSE-KMS (x-amz-server-side-encryption-aws-kms-key-id)."""
    service = _key_service(config_file, data_dir)
    _echo_key(_kms_call(service.create_key, alias=alias, description=description), "created")


@kms.command("list-keys")
@_kms_config_option
@_kms_data_dir_option
def kms_list_keys(config_file: str | None, data_dir: str | None) -> None:
    """List keys (never their material), including the ones Coffer manages."""
    service = _key_service(config_file, data_dir)
    infos = _kms_call(service.list_keys)
    click.echo(f"keyring {service.dir / 'keyring.json'}")
    if not infos:
        click.echo("no keys yet")
        return
    rows = [
        (
            i.key_id,
            i.alias,
            "enabled" if i.enabled else "disabled",
            str(i.versions),
            "coffer" if i.managed else "",
            i.description,
        )
        for i in infos
    ]
    _echo_table(("KEY ID", "ALIAS", "STATE", "VERSIONS", "MANAGED", "DESCRIPTION"), rows)


@kms.command("disable-key")
@click.argument("key_id")
@_kms_config_option
@_kms_data_dir_option
def kms_disable_key(key_id: str, config_file: str | None, data_dir: str | None) -> None:
    """Disable KEY_ID: no new objects with it, and its objects cannot be read until enabled again."""
    service = _key_service(config_file, data_dir)
    _echo_key(_kms_call(service.disable_key, key_id), "disabled")


@kms.command("enable-key")
@click.argument("key_id")
@_kms_config_option
@_kms_data_dir_option
def kms_enable_key(key_id: str, config_file: str | None, data_dir: str | None) -> None:
    """Enable KEY_ID again."""
    service = _key_service(config_file, data_dir)
    _echo_key(_kms_call(service.enable_key, key_id), "enabled")


@kms.command("rotate")
@click.argument("key_id", required=False)
@_kms_config_option
@_kms_data_dir_option
def kms_rotate(key_id: str | None, config_file: str | None, data_dir: str | None) -> None:
    """Give a key new key material (default: the SSE-S3 key).

    New objects' data keys are wrapped with the new version; older versions are kept, so
    existing objects stay readable. The master key is not changed by this.
    """
    service = _key_service(config_file, data_dir)
    _echo_key(_kms_call(service.rotate, key_id), "rotated")


@kms.command("rewrap")
@click.option("--dry-run", is_flag=True, help="Count what would be re-wrapped; change nothing.")
@_kms_config_option
@_kms_data_dir_option
def kms_rewrap(dry_run: bool, config_file: str | None, data_dir: str | None) -> None:
    """Re-wrap every encrypted object's data key under its key's newest version (after `rotate`).

    Bodies are not rewritten (the data key stays the same), only each version's wrapped key.
    SSE-C objects are skipped (their key is the customer's); open multipart uploads keep their
    wrap (still readable). Runs offline: refused while a server uses the data directory.
    """
    import asyncio

    from coffer.encryption import keyring

    settings = _keys_settings(config_file, data_dir)
    _data_dir(settings)
    store = settings.store_dir()
    if store is None:
        click.echo("memory storage without persistence keeps no objects between runs: nothing to re-wrap")
        return
    if not os.path.isdir(store):
        click.echo(f"no stored data at {os.path.abspath(store)}: nothing to re-wrap")
        return
    if not keyring.kms_dir(settings.data_dir).is_dir():
        click.echo("the key service was never used on this data directory: nothing to re-wrap")
        return
    lock = _claim_offline(store)  # held until the engine is closed: no server may start meanwhile
    try:
        service = _key_service(config_file, data_dir)
        report = asyncio.run(_rewrap(settings, service, dry_run))
    finally:
        lock.release()
    for failure in report.failures:
        click.echo(f"failed: {failure.bucket}/{failure.key} version {failure.version_id}: {failure.reason}", err=True)
    click.echo(("dry run: " if dry_run else "") + report.summary())
    if report.failures:
        sys.exit(1)


def _claim_offline(store: str) -> Any:
    """The data directory's server lock, taken exclusively for an offline tool (refused while a
    server or its workers hold it); the caller releases it."""
    from coffer.server.runner import DirLock, StartupError

    lock = DirLock(store)
    try:
        lock.acquire(share=False)
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None
    return lock


def _disk_store(config_file: str | None, data_dir: str | None) -> Path:
    """The disk engine's data directory of the settings (fsck and rebuild-index work on it)."""
    settings = _keys_settings(config_file, data_dir)
    if settings.storage != "disk":
        raise click.ClickException("this command works on the disk engine's data directory (storage: disk)")
    path = _data_dir(settings)
    if not (path / "blobs").is_dir() and not (path / "metadata.sqlite3").exists():
        raise click.ClickException(f"{path} holds no disk store (no blobs/ and no metadata.sqlite3)")
    return path


_store_options = [
    click.option("--data-dir", default=None, help="The server's data directory, as for `serve`. [env COFFER_DATA_DIR]"),
    click.option(
        "--config", "config_file", type=click.Path(dir_okay=False), default=None,
        help="YAML config file, as for `serve` (for the data directory). [env COFFER_CONFIG]",
    ),
]  # fmt: skip


def _with_store_options(fn: Any) -> Any:
    for option in reversed(_store_options):
        fn = option(fn)
    return fn


@main.command()
@click.option("--repair", is_flag=True, help="Quarantine corrupt bodies, remove their versions, delete orphan blobs.")
@click.option("--resume/--restart", default=True, help="Continue an interrupted run (default) or start over.")
@click.option("--orphan-grace", type=float, default=3600.0, show_default=True,
              help="Seconds a blob file no row references must be old to count as an orphan.")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Stop after this many versions (resumable).")
@click.option("--all-digests", is_flag=True, help="Compare the MD5 and every stored checksum, not only the fastest.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when a terminal).")
@_with_store_options
def fsck(
    repair: bool,
    resume: bool,
    orphan_grace: float,
    limit: int | None,
    all_digests: bool,
    as_json: bool,
    progress: bool | None,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Verify every stored body of a disk store against its recorded digests (docs/fsck.md).

    Reports corrupt and missing bodies and orphan blob files; exit status 1 when any is found.
    Runs offline: refused while a server uses the data directory.
    """
    from coffer.storage.disk.fsck import Fsck

    root = _disk_store(config_file, data_dir)
    lock = _claim_offline(str(root))
    try:
        checker = Fsck(
            root, repair=repair, resume=resume, orphan_grace=orphan_grace, limit=limit, all_digests=all_digests
        )
        checker.open()
        try:
            if not (sys.stderr.isatty() if progress is None else progress):
                report = checker.run()
            else:
                with click.progressbar(length=max(checker.total_bytes(), 1), label="verifying", file=sys.stderr) as bar:
                    checker.progress = bar.update
                    report = checker.run()
        finally:
            checker.close()
    finally:
        lock.release()
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=1))
    else:
        for p in report.problems:
            where = f" {p.bucket}/{p.key} version {p.version_id}" if p.bucket is not None else ""
            fixed = " (repaired)" if p.repaired else ""
            click.echo(f"{p.kind}:{where} blob {p.blob}: {p.detail}{fixed}")
        click.echo(report.summary())
    if any(not p.repaired for p in report.problems) or (report.problems and not repair):
        sys.exit(1)


@main.command("rebuild-index")
@click.option("--force", is_flag=True, help="Rebuild even though metadata.sqlite3 exists (it is moved aside).")
@_with_store_options
def rebuild_index(force: bool, config_file: str | None, data_dir: str | None) -> None:
    """Recreate metadata.sqlite3 of a disk store from its manifest journal and blob files.

    Buckets (with their configuration), every object version and delete marker with its
    metadata, tags, ACL, lock state and multipart pieces come back; uploads in progress do
    not (docs/fsck.md). Runs offline: refused while a server uses the data directory.
    """
    from coffer.storage.disk.rebuild import RebuildError
    from coffer.storage.disk.rebuild import rebuild_index as rebuild

    root = _disk_store(config_file, data_dir)
    lock = _claim_offline(str(root))
    try:
        report = rebuild(root, force=force)
    except RebuildError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        lock.release()
    for name in report.moved_aside:
        click.echo(f"moved aside: {name}")
    for blob in report.missing_blobs:
        click.echo(f"missing blob file: {blob}", err=True)
    click.echo(report.summary())
    if report.missing_blobs:
        sys.exit(1)


async def _rewrap(settings: Settings, service: Any, dry_run: bool) -> Any:
    """The engine opened as the server opens it, walked by ``rewrap_all``, closed."""
    from coffer.encryption.rewrap import rewrap_all
    from coffer.server.app import build_engine

    engine = build_engine(settings)
    await engine.start()
    try:
        return await rewrap_all(engine, service, dry_run=dry_run)
    finally:
        await engine.close()


@main.command()
@click.option(
    "--endpoint",
    default=None,
    help="The server's URL, e.g. http://127.0.0.1:9000; default: host and port from the settings, as for `serve`.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML config file, as for `serve` (for the default endpoint). [env COFFER_CONFIG]",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between the two metrics samples the request rate is measured over.",
)
def status(endpoint: str | None, config_file: str | None, interval: float) -> None:
    """Show a running server's version, uptime, objects, bytes and requests per second.

    Reads /_coffer/health and /_coffer/metrics (no signature needed); requests/s is the
    growth of the S3 request counter, all workers, between two metrics samples.
    """
    from coffer.server.runner import client_url
    from coffer.status import StatusError, fetch_status, render

    if endpoint is None:
        try:
            settings = load_settings(config_file, {})
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from None
        endpoint = client_url("https" if settings.tls_cert else "http", settings.host, settings.port)
    try:
        click.echo(render(fetch_status(endpoint, interval)))
    except StatusError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--endpoint", default=None, help="Benchmark this running S3 endpoint instead of starting Coffer.")
@click.option("--quick", is_flag=True, help="Smaller sizes and counts (a smoke run).")
@click.option("--compare/--no-compare", default=True, help="Also measure moto_server and a bare ASGI app.")
@click.option(
    "--suite",
    type=click.Choice(["main", "asgi", "inline"]),
    default="main",
    show_default=True,
    help="main: every figure and the targets; asgi: uvicorn vs granian, 1 vs 2 workers; "
    "inline: objects in the SQLite row vs in files.",
)
@click.option(
    "--asgi-server",
    "asgi",
    type=click.Choice(["uvicorn", "granian"]),
    default="uvicorn",
    show_default=True,
    help="ASGI server for the Coffer and bare-app processes the bench starts.",
)
@click.option("--workers", type=int, default=None, help="Worker processes for Coffer and the bare app.")
@click.option("--duration", type=float, default=None, help="Seconds each small-object phase is measured.")
@click.option("--json", "json_path", default=None, help="Also write every figure to this JSON file.")
def bench(
    endpoint: str | None,
    quick: bool,
    compare: bool,
    suite: str,
    asgi: str,
    workers: int | None,
    duration: float | None,
    json_path: str | None,
) -> None:
    """Measure small/large PUT and GET, listing and restart time; print figures.

    Every server runs on 127.0.0.1 with its own temporary data directory and is
    stopped at the end. See docs/benchmarks.md for the figures and commands.
    """
    from coffer.bench import run_bench

    run_bench(
        endpoint=endpoint,
        quick=quick,
        compare=compare,
        suite=suite,
        asgi=asgi,
        workers=workers,
        duration=duration,
        json_path=json_path,
    )


# copy / sync / verify between two S3 endpoints: a client tool with its own package.
main.add_command(_mirror_group, "mirror")


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
