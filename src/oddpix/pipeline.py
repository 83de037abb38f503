"""Every stage function in one namespace, for in-process runs (tests, benchmarks): ``pipeline.train(...)``.

The functions live one per module in :mod:`oddpix.steps`, which the DVC stages import directly.
"""

from .steps.common import log, read_prepared, read_scores, read_split
from .steps.download import download
from .steps.encode import encode
from .steps.evaluate import evaluate
from .steps.plots import plots
from .steps.preprocess import preprocess
from .steps.score import score
from .steps.split import split
from .steps.threshold import threshold
from .steps.train import train

__all__ = ["download", "split", "preprocess", "train", "encode", "score", "threshold", "evaluate", "plots",
           "log", "read_prepared", "read_scores", "read_split"]
