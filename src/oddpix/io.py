"""Atomic file output: write to a temporary name beside the target, then rename.

An interrupted stage therefore never leaves a half-written output for DVC (or a user) to trust.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import OddpixError


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; outputs get the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json(target: str | Path, data: Any) -> None:
    write_text(target, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_npz(target: str | Path, **arrays: np.ndarray) -> None:
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def write_torch(target: str | Path, obj: Any) -> None:
    import torch

    buffer = io.BytesIO()  # saved to memory first: torch names the archive's records after a file's name,
    torch.save(obj, buffer)  # so the random temporary name would make equal models differ byte for byte
    with atomic_path(target) as tmp:
        tmp.write_bytes(buffer.getvalue())


def read_torch(path: str | Path, what: str = "file") -> Any:
    """A file :func:`write_torch` wrote, loaded safely (tensors and plain containers only). Anything else
    (random bytes, a truncated file, a pickle with code in it) is one OddpixError; loading unsafely is
    never suggested."""
    import torch

    try:
        with warnings.catch_warnings():  # torch's warnings about odd pickles are noise here: we refuse them
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises many types here (UnpicklingError, RuntimeError, EOFError, ...)
        raise OddpixError(f"{path} is not a {what} written by oddpix, or it is damaged ({type(exc).__name__}); "
                          "make it again with `dvc repro`") from None


def write_csv(target: str | Path, frame) -> None:
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.8g")


def write_figure(target: str | Path, fig, dpi: int = 100) -> None:
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=Path(target).suffix.lstrip(".") or "png")
