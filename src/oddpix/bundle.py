"""A run bundle: everything scoring a new image needs, as one object with one reader.

Its parts are written by the stages that make them, each through a writer here: the detector with its
preprocessing (train: ``models/detector.pt``), the latent KDE (encode: ``models/kde.pt``), the scoring
settings the score stage used (``run.json`` beside the scores) and the threshold with its calibration
(threshold: ``models/threshold.json``, which carries the scoring settings on to predict). The KDE and the
threshold name the model they were made for (a hash of the model file), and :meth:`RunBundle.read`, the
one reader (the score and plots stages and ``oddpix predict``), refuses parts that do not belong together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .bundle_files import model_id
from .density import LatentKDE, load_kde
from .errors import OddpixError
from .fitted_threshold import Threshold
from .io import read_json
from .maps import LocalConfig
from .models import load_detector
from .preprocess import Preprocessor
from .schema import to_dict
from .scoring import score_with_maps

@dataclass(frozen=True)
class ScoringSettings:
    """What scoring must repeat exactly: the batch size (scores depend on it in their last digits) and
    the local scores' smoothing."""

    batch_size: int = 512
    local: LocalConfig = field(default_factory=LocalConfig)

    def to_dict(self) -> dict:
        return {"local": to_dict(self.local), "batch_size": self.batch_size}

    @classmethod
    def from_dict(cls, data: dict) -> "ScoringSettings":
        return cls(int(data.get("batch_size", 512)), LocalConfig(**data.get("local", {})))


@dataclass
class RunBundle:
    detector: torch.nn.Module
    preprocessor: Preprocessor
    kde: Optional[LatentKDE]
    threshold: Optional[Threshold]
    scoring: ScoringSettings
    model_id: str

    @classmethod
    def read(cls, model_path: str | Path, kde_path: str | Path, threshold_path: str | Path | None = None,
             scoring: Optional[ScoringSettings] = None) -> "RunBundle":
        """The bundle of a workspace's files; ``scoring`` (the score stage's own settings) or the threshold's."""
        detector, extra = load_detector(model_path)
        ident = model_id(model_path)
        kde = _kde_of(detector, kde_path, ident, model_path)
        threshold = None
        if threshold_path is not None:
            threshold = _threshold_of(detector, kde, threshold_path, ident, model_path)
            scoring = scoring or ScoringSettings.from_dict(threshold.scoring)
        if "preprocess" not in extra:
            raise OddpixError(f"{model_path} holds no preprocessing; retrain it (`dvc repro train`)")
        return cls(detector, Preprocessor.from_dict(extra["preprocess"]), kde, threshold,
                   scoring or ScoringSettings(), ident)

    @property
    def channels(self) -> int:
        return self.detector.input_shape[0]

    def components(self, x: torch.Tensor, keep_maps: bool = False, device: Any = None,
                   codes: Optional[torch.Tensor] = None) -> tuple[dict[str, torch.Tensor], Optional[torch.Tensor]]:
        """Score components of preprocessed images (and with ``keep_maps`` the smoothed anomaly maps of the
        same pass), exactly as the score stage computes them."""
        return score_with_maps(self.detector, x, self.kde, self.scoring.batch_size, device, codes,
                               self.scoring.local, keep_maps=keep_maps)


def _kde_of(detector, kde_path, ident: str, model_path) -> Optional[LatentKDE]:
    kde = load_kde(kde_path)
    if kde is None:
        return None
    made_for = getattr(kde, "model_id", None)
    if made_for is not None and made_for != ident:
        raise OddpixError(f"{kde_path} was fitted on the codes of another model than {model_path}; rerun the "
                          "encode stage (`dvc repro encode`) or pass the KDE that belongs to this model")
    if not detector.has_encoder:
        raise OddpixError(f"{kde_path} is a latent density, but {detector.name} ({model_path}) has no encoder")
    with torch.no_grad():
        dim = detector.encode(torch.zeros(1, *detector.input_shape)).shape[1]
    if kde.data.shape[1] != dim:
        raise OddpixError(f"{kde_path} holds {kde.data.shape[1]}-d codes; {model_path} encodes to {dim}-d: "
                          "they do not belong together")
    return kde


def _threshold_of(detector, kde, threshold_path, ident: str, model_path) -> Threshold:
    if not Path(threshold_path).exists():
        raise OddpixError(f"no threshold at {threshold_path}; run `dvc repro` (the threshold stage) first")
    try:
        data = read_json(threshold_path)
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise OddpixError(f"{threshold_path}: not a readable threshold file ({type(exc).__name__}); rerun "
                          "`dvc repro` (the threshold stage)") from None
    made_for = data.get("model_id") if isinstance(data, dict) else None
    if made_for is not None and made_for != ident:
        raise OddpixError(f"{threshold_path} was fitted on the scores of another model than {model_path}; rerun "
                          "`dvc repro` or pass the threshold that belongs to this model")
    threshold = Threshold.from_dict(data, where=str(threshold_path))
    known = set(detector.components(kde=kde is not None))
    missing = [c for c in threshold.components if c not in known]
    if missing:
        raise OddpixError(f"{threshold_path} decides by {missing[0]!r}, which {detector.name} does not score "
                          f"(it scores {', '.join(sorted(known))})")
    return threshold


def as_numpy(components: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.double().numpy() for k, v in components.items()}
