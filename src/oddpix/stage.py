"""The wrapper every DVC stage script uses: ``--params`` option, validated params, readable errors."""

from __future__ import annotations

import functools
import sys
from typing import Callable

import click

from .config import load_params
from .errors import OddpixError


def stage_command(fn: Callable) -> click.Command:
    """Turn ``fn(params, **options)`` into a click command that loads and validates params first and
    reports :class:`OddpixError` as one ``error: ...`` line with exit status 1 (no traceback)."""

    @functools.wraps(fn)
    def run(params_file: str, **options):
        try:
            fn(load_params(params_file), **options)
        except OddpixError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    run = click.option("--params", "params_file", default="params.yaml", show_default=True,
                       help="the params file to validate and use")(run)
    return click.command(help=fn.__doc__)(run)
