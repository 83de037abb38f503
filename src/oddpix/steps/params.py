"""Params stage: the whole params.yaml is validated whenever ``dvc repro`` looks at the pipeline.

The other stages each track only the keys they read, so a misspelt key that no stage reads (a top-level
``thresold:`` section) changed nothing DVC watches: every stage was skipped and the typo went unnoticed.
This stage tracks the whole file, so any edit runs it; the stage command validates the file on load
(``oddpix.stage``: a typo stops with the did-you-mean message) and then writes a marker whose content
never changes, so the stages after it are not rerun by an edit they do not read.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Params, reads
from ..io import write_text
from .common import log

MARKER = "params.yaml is valid (written by the params stage; the content never changes)\n"


@reads()
def params(params: Params, out_path: str | Path) -> None:
    write_text(out_path, MARKER)
    log("params: params.yaml is valid")
