"""Scoring with an exported bundle (:mod:`oddpix.export`): onnxruntime, numpy and Pillow only, no PyTorch
(``pip install oddpix[serve]`` is enough on the machine that scores).

A :class:`ServedBundle` reads the folder's manifest and graph once; :meth:`ServedBundle.predict_files`
reads image files exactly as the pipeline reads them for its model (:func:`oddpix.data.folder.read_image_file`:
16-bit and float images scaled, grayscale or RGB, bilinear resizing to the training images' size), runs
the graph in batches and decides with the stored threshold: the scores, decisions and p-values the
pipeline gave the same images.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from .data.folder import read_image_file
from .errors import OddpixError
from .fitted_threshold import Threshold
from .predictions import MAX_ASPECT, Prediction, collect_files, predict_with

FORMAT = "oddpix-bundle/1"
MAP_OUTPUT = "anomaly_map"
INPUT = "image_pixels"  # the graph's input (not "pixels": a component of ssl has that name)


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """The largest relative difference of ``a`` to ``b``: each |a - b| divided by the larger of |b| and ``b``'s
    spread (max - min). Relative to the value itself, except for values nearer zero than the spread (a
    z-score, a log-density crossing 0, a map's quiet pixels), which are measured on the spread, the scale
    a threshold works on: float32 differences between two runtimes are as large there as anywhere."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    if not np.isfinite(a).all() or not np.isfinite(b).all():
        return 0.0 if np.array_equal(a, b, equal_nan=True) else float("inf")
    if not b.size:
        return 0.0
    scale = np.maximum(np.abs(b), float(b.max() - b.min()))
    return float((np.abs(a - b) / np.maximum(scale, 1e-30)).max())


def read_manifest(bundle_dir: str | Path) -> dict:
    path = Path(bundle_dir) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise OddpixError(f"{path}: not a readable bundle manifest ({type(exc).__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise OddpixError(f"{path}: not an oddpix bundle (format {FORMAT!r} expected)")
    for key in ("input", "outputs", "components", "threshold"):
        if key not in manifest:
            raise OddpixError(f"{path}: the manifest has no {key!r}; export the bundle again")
    return manifest


class ServedBundle:
    """An exported bundle, ready to score."""

    def __init__(self, bundle_dir: str | Path, threads: Optional[int] = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise OddpixError("scoring a bundle needs onnxruntime (a dependency of oddpix): pip install onnxruntime") from None
        self.path = Path(bundle_dir)
        self.manifest = read_manifest(self.path)
        spec = self.manifest["input"]
        self.height, self.width, self.channels = int(spec["height"]), int(spec["width"]), int(spec["channels"])
        self.components = list(self.manifest["components"])
        self.map_output = self.manifest.get("map")
        self.batch_size = int(self.manifest.get("scoring", {}).get("batch_size", 512))
        try:
            self.threshold = Threshold.from_dict(self.manifest["threshold"], where=f"{self.path}/manifest.json: threshold")
        except (KeyError, TypeError, ValueError) as exc:
            raise OddpixError(f"{self.path}/manifest.json: the threshold cannot be read ({exc})") from None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path / "model.onnx"), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for missing or broken graphs
            raise OddpixError(f"{self.path}/model.onnx: not a readable ONNX graph ({type(exc).__name__})") from None
        self.outputs = [o.name for o in self.session.get_outputs()]

    @property
    def detector(self) -> str:
        return str(self.manifest.get("detector"))

    @property
    def has_maps(self) -> bool:
        return self.map_output is not None

    def read(self, path: str | Path | bytes, max_pixels: Optional[int] = None) -> np.ndarray:
        """One file (a path or its bytes) as the graph's H x W x C float32 pixels (0-255)."""
        bound = {} if max_pixels is None else {"max_pixels": max_pixels}
        return read_image_file(path, self.channels, (self.height, self.width), **bound).astype(np.float32)

    def score(self, pixels: np.ndarray) -> tuple[dict[str, np.ndarray], Optional[np.ndarray]]:
        """Score components (float64, as the pipeline's tables hold them) and the smoothed maps of N x H x W x C
        pixels, in batches."""
        comps: dict[str, list] = {name: [] for name in self.components}
        maps = []
        for start in range(0, len(pixels), self.batch_size):
            out = dict(zip(self.outputs, self.session.run(None, {INPUT: pixels[start:start + self.batch_size]})))
            for name in self.components:
                comps[name].append(out[name])
            if self.map_output:
                maps.append(out[self.map_output])
        values = {k: np.concatenate(v).astype(np.float64) for k, v in comps.items()}
        return values, (np.concatenate(maps) if maps else None)  # NaN scores: per-image errors (predictions.decide)

    def predict_files(self, paths: Iterable[str | Path], maps_dir: str | Path | None = None,
                      max_aspect: Optional[float] = MAX_ASPECT) -> list[Prediction]:
        if maps_dir is not None and not self.has_maps:
            raise OddpixError(f"model {self.detector} has no anomaly maps (--maps needs a detector with maps)")
        return predict_with(collect_files(paths), self.read, lambda arrays, _maps: self.score(np.stack(arrays)),
                            self.threshold, maps_dir, (self.height, self.width), max_aspect)
