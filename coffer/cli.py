"""The ``coffer`` command: serve, init, bench."""

from __future__ import annotations

import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from coffer import __version__
from coffer.config import ConfigError, Settings, env_name, load_settings, render_config_yaml


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
        elif isinstance(default, list):
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
    from coffer.server.runner import run

    sys.exit(run(settings))


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
    """Write a fully commented config.yaml holding every setting at its default."""
    target = Path(path)
    if target.exists() and not force:
        raise click.UsageError(f"{target} exists (use --force to overwrite)")
    target.write_text(render_config_yaml())
    click.echo(f"wrote {target}")


@main.command()
@click.option("--endpoint", default=None, help="Benchmark this running S3 endpoint instead of starting servers.")
@click.option("--quick", is_flag=True, help="Smaller sizes and counts (a smoke run).")
@click.option("--compare/--no-compare", default=True, help="Also measure moto_server and a bare ASGI app.")
def bench(endpoint: str | None, quick: bool, compare: bool) -> None:
    """Measure small/large PUT and GET, listing and restart time; print figures."""
    from coffer.bench import run_bench

    run_bench(endpoint=endpoint, quick=quick, compare=compare)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
