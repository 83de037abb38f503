"""``oddpix export``: a trained run bundle (:mod:`oddpix.bundle`) as a self-contained folder that scores
images without PyTorch (:mod:`oddpix.served`).

The folder holds

* ``model.onnx``: the whole scoring graph, from the pixels of images as read from their files (float32
  N x H x W x C, values 0-255, at the size the training images were read) to every score component and,
  for detectors with maps, the smoothed anomaly map: the stored preprocessing (channel conversion,
  resizing, normalisation), the detector, the local components read from its maps and the latent KDE's
  ``density``; memory banks, KDE codes and fusion statistics are constants of the graph;
* ``manifest.json``: what reading and deciding need: the input size and channels, how a file becomes
  pixels, the graph's output names, the threshold rule with its bounds and its calibration (p-values),
  the params and code version the model came from.

The graph is the pipeline's own scoring code (:func:`oddpix.scoring.score_with_maps`'s steps) traced once,
so what runs in the bundle is what ran in the score stage; the export checks it on a batch of generated
images before writing and refuses, with one line saying why, a detector whose graph does not give the
pipeline's scores.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from .bundle import RunBundle
from .errors import OddpixError
from .io import write_json
from .scoring import batch_components
from .served import FORMAT, INPUT, MAP_OUTPUT, relative_difference

OPSET = 18
TOLERANCE = 1e-5  # the largest relative difference of a bundle's outputs to the pipeline's (served.relative_difference)
# ... except the KDE's density: minus the log of a sum of Gaussians of the encoder's codes, it multiplies the
# float32 differences of two runtimes' encoders by up to (code / bandwidth)^2, to ~1e-5 relative itself
DENSITY_TOLERANCE = 1e-4


def tolerance(output: str) -> float:
    return DENSITY_TOLERANCE if output == "density" else TOLERANCE


class ScoringGraph(nn.Module):
    """Pixels (N x H x W x C, 0-255) -> every score component (and the smoothed map), as the score stage."""

    def __init__(self, bundle: RunBundle):
        super().__init__()
        self.detector = bundle.detector.eval()
        self.preprocessor = bundle.preprocessor
        self.kde = bundle.kde
        self.local = bundle.scoring.local
        self.has_maps = bool(getattr(self.detector, "has_maps", False))
        self.names = list(self.detector.components(kde=self.kde is not None))

    def forward(self, pixels: torch.Tensor):
        x = self.preprocessor.transform(pixels)
        comps, smooth = batch_components(self.detector, x, self.local)
        if self.kde is not None:
            comps["density"] = -self.kde.log_density(self.detector.encode(x))
        out = [comps[name].float() for name in self.names]
        return (*out, smooth.float()) if smooth is not None else tuple(out)


def pixel_shape(bundle: RunBundle) -> tuple[int, int, int]:
    """(H, W, C) of the pixels the graph takes: the size the training images were read at, and 1 channel
    (grayscale) or 3 (RGB) as files are read for the model (:func:`oddpix.predict.read_image`)."""
    size = bundle.preprocessor.source_size
    if not size:
        raise OddpixError("the model's preprocessing records no source size; retrain it (`dvc repro train`)")
    return int(size[0]), int(size[1]), 1 if bundle.channels == 1 else 3


def export(bundle: RunBundle, out_dir: str | Path, *, params: Optional[dict] = None,
           code_version: Optional[str] = None, check_images: int = 8, seed: int = 0) -> Path:
    """Write the bundle folder; returns its path. Raises OddpixError (one line) when the detector cannot be
    exported faithfully."""
    if bundle.threshold is None:
        raise OddpixError("export needs the fitted threshold (models/threshold.json); run `dvc repro` first")
    out = Path(out_dir)
    h, w, c = pixel_shape(bundle)
    graph = ScoringGraph(bundle)
    outputs = [*graph.names, *([MAP_OUTPUT] if graph.has_maps else [])]
    rng = np.random.default_rng(seed)
    sample = torch.from_numpy(rng.integers(0, 256, (max(2, check_images), h, w, c)).astype(np.float32))
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(graph, (sample,), input_names=[INPUT], output_names=outputs,
                                        dynamic_shapes=({0: torch.export.Dim("n", min=1, max=1 << 20)},),
                                        opset_version=OPSET, dynamo=True, verbose=False,
                                        optimize=False)  # half the export time; onnxruntime optimises the graph
                                                         # itself when it loads it (same speed, measured)
            program.save(str(onnx_path))
        except Exception as exc:  # the exporter raises many types; each means "this graph does not export"
            cause = exc
            while cause.__cause__ is not None:  # the exporter wraps the reason: name the innermost
                cause = cause.__cause__
            first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
            raise OddpixError(f"model {bundle.detector.name} does not export to ONNX: {first}") from None
        reference = graph(sample)
    check = compare(onnx_path, sample.numpy(), dict(zip(outputs, (r.numpy() for r in reference))))
    if check["worst_share"] > 1:
        onnx_path.unlink()
        name = check["worst"]
        raise OddpixError(f"model {bundle.detector.name}: the exported graph's {name} differs from the pipeline's by "
                          f"{check['differences'][name]:.2g} (relative) > {tolerance(name):g}; not exported")
    manifest = {
        "format": FORMAT,
        "detector": bundle.detector.name,
        "model_id": bundle.model_id,
        "code_version": code_version,
        "input": {"name": INPUT, "height": h, "width": w, "channels": c, "layout": "NHWC", "dtype": "float32",
                  "range": [0, 255],
                  "read": "Pillow: 16-bit and float images scaled to 8 bits, converted to L (1 channel) or RGB, "
                          "resized to width x height with bilinear filtering"},
        "outputs": outputs,
        "components": graph.names,
        "map": MAP_OUTPUT if graph.has_maps else None,
        "threshold": bundle.threshold.to_dict(),
        "preprocess": bundle.preprocessor.to_dict(),
        "scoring": bundle.scoring.to_dict(),
        "check": {"images": len(sample), "relative_differences": check["differences"],
                  "tolerances": {o: tolerance(o) for o in outputs}},
        "params": params,
    }
    write_json(out / "manifest.json", manifest)
    return out


def compare(onnx_path: str | Path, pixels: np.ndarray, reference: dict[str, np.ndarray]) -> dict:
    """Run the ONNX graph on ``pixels``: each output's relative difference to ``reference``, and the output
    whose difference is the largest share of its tolerance."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {INPUT: pixels})))
    differences = {name: relative_difference(got[name], ref) for name, ref in reference.items()}
    worst = max(differences, key=lambda name: differences[name] / tolerance(name))
    return {"differences": differences, "worst": worst, "worst_share": differences[worst] / tolerance(worst)}


def experiment_bundle(rev: str, out_dir: str | Path, repo: str | Path = ".") -> Path:
    """Copy the bundle that the export stage made in the DVC experiment (or any git revision) ``rev`` of
    ``repo`` to ``out_dir``, from DVC's cache; returns ``out_dir``."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    from .pipeline import LAYOUT
    from .served import read_manifest

    out = Path(out_dir)
    if out.exists():
        raise OddpixError(f"{out} exists; name a new folder with --out")
    try:
        Repo.get(str(repo), LAYOUT["bundle"], out=str(out), rev=rev)
    except (DvcException, OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise OddpixError(f"no bundle in {rev!r} ({first}); `dvc exp show` lists the experiments, and one run "
                          f"before the export stage existed needs `dvc exp run` again") from None
    read_manifest(out)  # a bundle, or one line saying why not
    return out
