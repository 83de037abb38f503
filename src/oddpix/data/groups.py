"""Groups of photos that show one physical object (so that a split keeps them on one side)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import OddpixError


class _UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return int(i)

    def join(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def _mutual_nearest(za: torch.Tensor, zb: torch.Tensor) -> list[tuple[int, int]]:
    d = torch.cdist(za, zb)
    forward, backward = d.argmin(1).numpy(), d.argmin(0).numpy()
    return [(i, int(j)) for i, j in enumerate(forward) if backward[j] == i]


def tile_groups(root: Path, out: Path, size: int = 64) -> Path:
    """Write ``file,group`` for an image folder whose files are named ``exp<k>_...`` by lighting: mutual
    nearest neighbours between the photos of two lightings of one class, after a local contrast
    normalisation that takes the lighting out, are joined (union-find); a group is one physical object."""
    from ..maps import gaussian_blur
    from ..preprocess import local_contrast
    from .folder import load_image_folder

    if not Path(root).is_dir():
        raise OddpixError(f"{root} is not a folder of images")
    images = load_image_folder(root, size, 1, warn=lambda m: None)
    x = torch.from_numpy(images.x).permute(0, 3, 1, 2).float() / 255
    # zero edges (not the pipeline's replicated ones): the published groups were found that way
    z = gaussian_blur(local_contrast(x, 4.0, edges="zeros"), 1.0).flatten(1)
    session = np.asarray([Path(f).name.split("_")[0] for f in images.files])
    groups = _UnionFind(len(x))
    for k in range(len(images.classes)):
        lightings = np.unique(session[images.y == k])
        for a in lightings:
            for b in lightings[lightings > a]:
                ia = np.flatnonzero((images.y == k) & (session == a))
                ib = np.flatnonzero((images.y == k) & (session == b))
                for i, j in _mutual_nearest(z[ia], z[ib]):
                    groups.join(ia[i], ib[j])
    rows = ["file,group"] + [f"{f},{groups.find(i)}" for i, f in enumerate(images.files)]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(rows) + "\n")
    return Path(out)
