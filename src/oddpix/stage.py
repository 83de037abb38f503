"""The one entry point of every DVC stage script: ``stages/<stage>.py`` calls :func:`stage_main`.

It loads and validates params.yaml, then runs the stage's step from the table in :mod:`oddpix.pipeline`
on the paths of its layout (relative to ``--root``, the workspace DVC runs in), and reports an
:class:`OddpixError` as one ``error: ...`` line with exit status 1 (no traceback).
"""

from __future__ import annotations

import sys

import click

from .errors import OddpixError, one_line
from .pipeline import LAYOUT, STAGE


def stage_command(name: str) -> click.Command:
    stage = STAGE[name]
    reads = ", ".join(f"{LAYOUT[k]}" for k in stage.deps.values()) or "nothing but params.yaml"
    writes = ", ".join(f"{LAYOUT[k]}" for k in stage.outs.values())

    def run(params_file: str, root: str) -> None:
        try:
            from .config import load_params  # here, so a missing package is reported as one line

            stage.step()(load_params(params_file), **stage.paths(root))
        except (OddpixError, ImportError, OSError) as exc:  # one line, not a traceback
            if (error := one_line(exc)) is None:
                raise
            where = f"stage {name}: " if isinstance(exc, OSError) else ""
            click.echo(f"error: {where}{error}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    run = click.option("--root", default=".", show_default=True, help="the workspace the paths are under")(run)
    run = click.option("--params", "params_file", default="params.yaml", show_default=True,
                       help="the params file to validate and use")(run)
    return click.command(name=name, help=f"DVC stage {name}: {stage.doc}.\n\nReads {reads}; writes {writes}.")(run)


def stage_main(name: str) -> None:
    stage_command(name)()
