"""Where a result came from: the version of the code that produced it."""

from __future__ import annotations

import hashlib
from pathlib import Path


def code_version() -> str:
    """A hash of every source file of the oddpix package: equal code, equal version."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
