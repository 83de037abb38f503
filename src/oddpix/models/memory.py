"""Memory banks: training data a detector remembers instead of (or besides) learning weights, and the
distances of queries to their nearest remembered rows (``knn``, ``patch_knn``, ``ssl``).

A bank is a 2-D buffer (rows x features) registered empty with :func:`register_memory` and filled by the
detector's ``fit``; it is saved with the weights under its own name, and a loaded state dict resizes it to
the stored size (known only from the file) before the values are copied in.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Optional

import torch
from torch import nn

from ..runtime import blocks


def register_memory(module: nn.Module, name: str, width: int) -> None:
    """An empty ``name`` buffer of ``width`` columns on ``module``, which loading a state dict resizes."""
    module.register_buffer(name, torch.zeros(0, width))
    module.register_load_state_dict_pre_hook(partial(_take_stored_size, name=name))


def _take_stored_size(module: nn.Module, state_dict: dict, prefix: str, *_args, name: str) -> None:
    if prefix + name in state_dict:
        setattr(module, name, torch.empty_like(state_dict[prefix + name]))


def nearest_distances(queries: torch.Tensor, memory: torch.Tensor, k: int,
                      rows: Optional[int] = None) -> torch.Tensor:
    """len(queries) x k: each query row's Euclidean distances to its ``k`` nearest memory rows, nearest
    first; ``rows``: at most that many queries at a time (the distance matrix is rows x len(memory))."""
    if rows is not None:
        return torch.cat([nearest_distances(q, memory, k) for q in blocks(queries, rows)])
    # the nearest rows by cdist (fast, but its matrix-product form loses digits on small distances), then
    # their distances again from the differences themselves: exact to float precision, so an exported graph
    # (another runtime, another summation order) gives the same distances to ~1e-7
    nearest = torch.cdist(queries, memory).topk(k, dim=1, largest=False).indices
    return (queries[:, None, :] - memory[nearest]).pow(2).sum(-1).sqrt().sort(dim=1).values


def kth_distance(queries: torch.Tensor, memory: torch.Tensor, k: int, rows: Optional[int] = None) -> torch.Tensor:
    """Each query row's distance to its ``k``-th nearest memory row."""
    return nearest_distances(queries, memory, k, rows)[:, -1]


@torch.no_grad()
def random_patch_rows(x: torch.Tensor, count: int, g: torch.Generator,
                      features: Callable[[torch.Tensor], torch.Tensor], batch: int = 64) -> torch.Tensor:
    """``count`` patch features drawn at random, without replacement, from those of every image of ``x``
    (``features``: a batch of images -> N x C x h x w), extracted ``batch`` images at a time, so the features
    of all images at once are never held; rows in image order."""
    rows, pick, per_image = [], None, 0
    for start in range(0, len(x), batch):
        f = features(x[start:start + batch].float())
        if pick is None:  # the patch grid is known from the first batch
            per_image = f.shape[2] * f.shape[3]
            pick = torch.randperm(len(x) * per_image, generator=g, device=x.device)[:count].sort().values
        f = f.permute(0, 2, 3, 1).flatten(0, 2)
        rows.append(f[pick[(pick >= start * per_image) & (pick < (start + batch) * per_image)] - start * per_image])
    return torch.cat(rows)
