"""Seeds, devices and batched evaluation: the small pieces every stage shares."""

from __future__ import annotations

import os
import random
import sys
from typing import Callable

import numpy as np
import torch

from .errors import OddpixError


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, make torch deterministic, and return a seeded CPU generator."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def machine(device: str = "cpu") -> str:
    """What a run ran on, for results tables: the GPU's name, or the CPU with its cores and torch threads."""
    import platform

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def physical_memory_bytes() -> int | None:
    """This machine's memory in bytes (None where the platform does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def peak_memory_mb() -> int | None:
    """This process's peak resident memory so far, in MB (None where the platform does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024))  # bytes on macOS, KiB on Linux


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; an explicit device must exist."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise OddpixError("device: 'cuda' was asked for but no CUDA GPU is visible; use device: auto or cpu")
    if name == "mps" and not mps:
        raise OddpixError("device: 'mps' was asked for but Apple MPS is not available; use device: auto or cpu")
    return torch.device(name)


def blocks(x: torch.Tensor, size: int) -> list[torch.Tensor]:
    """``x`` in consecutive blocks of at most ``size`` rows (bounding the memory of what is computed per
    block); one block when traced into an exported graph, whose batch size is not known."""
    if torch.compiler.is_exporting():
        return [x]
    return [x[start:start + size] for start in range(0, len(x), size)]


def batched(fn: Callable[[torch.Tensor], torch.Tensor | dict[str, torch.Tensor]], x: torch.Tensor,
            batch_size: int, device: torch.device | None = None):
    """Apply ``fn`` to ``x`` in batches (moved to ``device``) and concatenate the CPU results.

    ``fn`` returns a tensor or a dict of tensors; the result has the same shape.
    """
    if torch.compiler.is_exporting():  # traced into an exported graph: one pass, whatever the batch
        return fn(x)
    outs: list = []
    for start in range(0, len(x), batch_size):
        batch = x[start:start + batch_size]
        if device is not None:
            batch = batch.to(device, non_blocking=True)
        outs.append(fn(batch))
    if not outs:
        raise OddpixError("nothing to evaluate: the input has no images")
    if isinstance(outs[0], dict):
        return {k: torch.cat([o[k].detach().cpu() for o in outs]) for k in outs[0]}
    return torch.cat([o.detach().cpu() for o in outs])
