"""What scoring image files gives, whichever scorer did it (a workspace's run bundle with PyTorch,
:mod:`oddpix.predict`; an exported bundle without it, :mod:`oddpix.served`): one :class:`Prediction` per
file, the files a list of paths names, the decision from the threshold, and heat-map pictures. Imports no
PyTorch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from .errors import OddpixError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


@dataclass
class Prediction:
    file: str
    score: Optional[float] = None
    anomaly: Optional[bool] = None
    p_value: Optional[float] = None  # share of validation normals scoring at least as high
    components: dict = field(default_factory=dict)
    error: Optional[str] = None
    note: Optional[str] = None  # e.g. how the image was resized to the model's input

    def row(self) -> dict:
        return {"file": self.file, "score": self.score, "anomaly": self.anomaly, "p_value": self.p_value,
                **self.components, "error": self.error, "note": self.note}


def collect_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, and the image files under any directory (sorted, recursively)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)
    return out


def decide(results: Sequence[Prediction], scored: Sequence[int], comps: dict[str, np.ndarray], threshold) -> None:
    """Fill the ``scored`` results in with their components, score (the threshold's ranking), decision and
    p-value (when the threshold has a calibration)."""
    ranking, decision = threshold.ranking(comps), threshold.predict(comps)
    p_values = threshold.p_value(comps) if threshold.calibration else None
    for j, i in enumerate(scored):
        results[i].components = {k: float(v[j]) for k, v in comps.items()}
        if not np.isfinite(ranking[j]):  # NaN is never "normal": broken weights or preprocessing
            results[i].error = ("the model scored this image NaN or infinite (broken weights or preprocessing, "
                                "e.g. a std of 0); retrain it")
            continue
        results[i].score = float(ranking[j])
        results[i].anomaly = bool(decision[j])
        results[i].p_value = float(p_values[j]) if p_values is not None else None


# No bound by default: the folder loader resizes training and test images of any aspect ratio the same way,
# so predict must score them as evaluation did; --max-aspect refuses images the resize would distort more.
MAX_ASPECT: float | None = None


def resize_note(path: Path | bytes, size: Optional[tuple[int, int]],
                max_aspect: Optional[float] = MAX_ASPECT) -> Optional[str]:
    """How the file at ``path`` (or these bytes) will be resized to ``size`` = (H, W) (None when it is not),
    from its header only; raises OddpixError when its aspect ratio differs from the model's by more than
    ``max_aspect``."""
    if size is None:
        return None
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(path) if isinstance(path, (bytes, bytearray)) else path) as img:
            w, h = img.size
    except Exception:  # unreadable: the read itself says why
        return None
    if (h, w) == tuple(size):
        return None
    change = (w / h) / (size[1] / size[0])
    if max_aspect is not None and max(change, 1 / change) > max_aspect:
        raise OddpixError(f"{w}x{h} pixels; the model reads {size[1]}x{size[0]}, a change of aspect ratio of "
                          f"{max(change, 1 / change):.2f}x (more than {max_aspect:g}): crop or pad it, or raise --max-aspect")
    return f"resized from {w}x{h} to {size[1]}x{size[0]} (bilinear)"


def predict_with(files: Sequence[Path], read: Callable[[Path], Any],
                 score: Callable[[list, bool], tuple[dict[str, np.ndarray], Any]], threshold,
                 maps_dir: str | Path | None = None, size: Optional[tuple[int, int]] = None,
                 max_aspect: Optional[float] = MAX_ASPECT) -> list[Prediction]:
    """Score ``files`` with any scorer: ``read`` turns one file into its input (raising OddpixError with the
    reason when it cannot), ``score`` the inputs that could be read (and whether maps are wanted) into score
    components and maps; the decisions come from ``threshold``; with ``maps_dir`` one heat map per file.
    ``size`` (H, W the model reads): each resized file gets a note, one whose aspect ratio changes by more
    than ``max_aspect`` an error."""
    results = [Prediction(file=str(f)) for f in files]
    good, inputs = [], []
    for i, f in enumerate(files):
        try:
            results[i].note = resize_note(f, size, max_aspect)
            inputs.append(read(f))
        except OddpixError as exc:
            results[i].error = str(exc)
            continue
        good.append(i)
    if good:
        names = [files[i] for i in good]
        if maps_dir is not None and len({f.stem for f in names}) < len(names):
            raise OddpixError("--maps: two files share a name; score them in separate calls")
        comps, maps = score(inputs, maps_dir is not None)
        decide(results, good, comps, threshold)
        if maps_dir is not None:
            try:
                write_heat_maps(maps, names, maps_dir)
            except OddpixError as exc:  # the scores stand; each image says its map is missing
                for i in good:
                    results[i].error = results[i].error or f"heat map not written: {exc}"
    return results


def write_heat_maps(maps, files: list[Path], out_dir: str | Path) -> list[Path]:
    """One heat-map PNG per image (its smoothed anomaly map, inferno colours, black = 0 and white = that
    image's own maximum; the maximum itself is the ``local_max`` component) at the model's input size."""
    from PIL import Image

    from .figures import pyplot

    import os
    import tempfile

    colours = pyplot().get_cmap("inferno")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OddpixError(f"{out_dir} is a file, not a folder") from None
    except OSError as exc:
        raise OddpixError(f"cannot make the folder {out_dir} ({exc.strerror})") from None
    written = []
    for f, m in zip(files, np.asarray(maps)):  # one small PNG per file: writing, not a hot path
        scaled = m / max(float(np.nan_to_num(m).max()), 1e-12)
        target = out_dir / (f.stem + "_map.png")
        if target.is_dir() and not target.is_symlink():
            raise OddpixError(f"{target} is a folder")
        try:  # a new file renamed onto the name: atomic, and a link planted there is replaced, not followed
            fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".map-", suffix=".png")
            with os.fdopen(fd, "wb") as fh:
                Image.fromarray((colours(scaled)[..., :3] * 255).astype(np.uint8)).save(fh, format="PNG")
            os.replace(tmp, target)
        except OSError as exc:
            if "tmp" in locals() and Path(tmp).exists():
                Path(tmp).unlink()
            raise OddpixError(f"cannot write into {out_dir} ({exc.strerror or exc})") from None
        written.append(target)
    return written
