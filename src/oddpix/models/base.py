"""The one interface every detector implements, and the training template it inherits.

A detector is a ``torch.nn.Module`` with:

* ``name`` and ``Config``: its registry name and a frozen dataclass of its architecture and training
  knobs (``models.<name>`` in params, declared in the detector's module);
* ``score(x)``: a batch of images -> named per-image score components, higher = more anomalous; the
  names are ``score_components`` (the first is the default, ``score.component: auto``);
* ``encode(x)``: latent codes, for detectors with an encoder (``has_encoder``: the pipeline then fits a
  KDE on them and adds the ``density`` component);
* ``reconstruct(x)``: images in input space, for detectors that reconstruct (``None`` otherwise);
* ``anomaly_map(x)``: N x H x W per-pixel anomaly maps, for detectors with ``has_maps`` (the pipeline then
  adds the local components ``local_max`` / ``local_topk``, :mod:`oddpix.maps`); the default is the squared
  reconstruction error, colour channels summed;
* ``supervised``: it needs labelled anomalies in training; ``needs_kde``: its decision uses the KDE;
* ``fit_report``: extra training results (e.g. cross-validation) for ``metrics/train.json``.

Training template: :meth:`Detector.fit` runs the phases that :meth:`phases` yields (one by default) through
the one training loop (:func:`oddpix.training.train_loop`: seeded batches, a progress bar, one log line
per epoch, early stopping that restores the best weights). A plain detector writes only its network,
:meth:`loss` and :meth:`score`; one with several optimizers (GANs) overrides :meth:`configure_optimizers`
and :meth:`training_step`; multi-phase training (pretraining, rounds with a refined training set) is a
generator of :class:`Phase` objects, which may run code between phases; a detector with nothing to
optimise (it only remembers training data) overrides :meth:`fit` and returns an empty history. Saving and
loading go through :func:`oddpix.models.save_detector` / :func:`load_detector` (:mod:`.store`), which
store the settings with the weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, ClassVar, Iterator, Optional

import torch
from torch import nn

from ..errors import OddpixError
from ..maps import LOCAL_COMPONENTS
from ..training import Data, FitContext, optimize, train_loop

SUPERVISED_HINT = "set data.contamination (e.g. 0.1) and data.val_anomaly_fraction (e.g. 0.1)"


@dataclass
class FitData:
    train_x: torch.Tensor
    val_x: Optional[torch.Tensor] = None
    train_y: Optional[torch.Tensor] = None
    val_y: Optional[torch.Tensor] = None

    def normal_val_x(self) -> Optional[torch.Tensor]:
        """The normal validation images: what an unsupervised model may early-stop on."""
        if self.val_x is None or self.val_y is None:
            return self.val_x
        return self.val_x[self.val_y == 0]


@dataclass
class Phase:
    """One stretch of training with the shared loop. Unset fields take the detector's defaults."""

    epochs: int
    name: Optional[str] = None          # the history's ``phase`` column and the log lines' prefix
    train: Optional[Data] = None        # default: ``train_data(data)``
    loss: Optional[Callable[[Any], torch.Tensor]] = None      # default: ``loss``
    val_loss: Optional[Callable[[Any], torch.Tensor]] = None  # default: ``validation_loss``
    optimizers: Optional[list] = None   # default: the previous phase's (the first: ``configure_optimizers()``)
    tags: dict = field(default_factory=dict)  # extra columns of this phase's history rows


class Detector(nn.Module):
    name: ClassVar[str]
    Config: ClassVar[type]
    score_components: ClassVar[tuple[str, ...]]
    has_encoder: ClassVar[bool] = False
    has_maps: ClassVar[bool] = False
    supervised: ClassVar[bool] = False
    needs_kde: ClassVar[bool] = False

    def __init__(self, config, input_shape: tuple[int, int, int]):
        super().__init__()
        self.config = config
        self.input_shape = tuple(int(s) for s in input_shape)
        self.fit_report: dict = {}

    @classmethod
    def components(cls, kde: bool) -> list[str]:
        """Every score component a run produces: the detector's, the local ones read from its anomaly maps,
        and ``density`` from the KDE."""
        return [*cls.score_components, *(LOCAL_COMPONENTS if cls.has_maps else ()),
                *(["density"] if kde and cls.has_encoder else [])]

    # ---- the training template -----------------------------------------------------------------------

    def fit(self, data: FitData, ctx: FitContext) -> list[dict]:
        """Train on ``data.train_x`` (early stopping on the validation images); returns the history, one
        row per epoch."""
        if self.supervised and (data.train_y is None or not bool(data.train_y.any())):
            raise OddpixError(f"model {self.name} is supervised and the training split has no labelled "
                              f"anomalies; {SUPERVISED_HINT}")
        self.to(ctx.device)
        history: list[dict] = []
        optimizers = None
        for phase in self.phases(data, ctx):
            optimizers = phase.optimizers or optimizers or self.configure_optimizers()
            phase = replace(phase, optimizers=optimizers, loss=phase.loss or self.loss,
                            val_loss=phase.val_loss or self.validation_loss,
                            train=self.train_data(data) if phase.train is None else phase.train)
            history += self._run_phase(phase, data, ctx, offset=len(history))
        return history

    def _run_phase(self, phase: Phase, data: FitData, ctx: FitContext, offset: int) -> list[dict]:
        rows = train_loop(self, phase.train, self.val_data(data), replace(self.config, epochs=phase.epochs), ctx,
                          lambda batch: self.training_step(batch, phase), phase.val_loss,
                          name=f"{self.name} {phase.name}" if phase.name else self.name)
        tags = {"phase": phase.name} if phase.name else {}
        return [{**row, "epoch": row["epoch"] + offset, **tags, **phase.tags} for row in rows]

    def phases(self, data: FitData, ctx: FitContext) -> Iterator[Phase]:
        """The phases of training, in order (a generator: code between ``yield``s runs between phases)."""
        yield Phase(self.config.epochs)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)]

    def training_step(self, batch: Data, phase: Phase) -> dict[str, float]:
        """One optimisation step on ``batch``; returns the losses to average and log."""
        return {"loss": optimize(phase.optimizers[0], phase.loss(batch))}

    def loss(self, batch: Data) -> torch.Tensor:
        """The training objective on a batch (mean over its images)."""
        raise NotImplementedError(f"{self.name} defines no loss")

    def validation_loss(self, batch: Data) -> torch.Tensor:
        """What early stopping watches (the module is in ``eval()`` mode); default: the training loss."""
        return self.loss(batch)

    def train_data(self, data: FitData) -> Data:
        return data.train_x

    def val_data(self, data: FitData) -> Optional[Data]:
        return data.normal_val_x()

    # ---- what a trained detector does ----------------------------------------------------------------

    def score(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} has no encoder")

    def reconstruct(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        return None

    def score_and_map(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``score(x)`` and ``anomaly_map(x)`` together (a detector that computes both at once overrides it)."""
        return self.score(x), self.anomaly_map(x)

    @torch.no_grad()
    def anomaly_map(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel anomaly map, N x H x W (default: squared reconstruction error, channels summed)."""
        recon = self.reconstruct(x)
        if recon is None:
            raise NotImplementedError(f"{self.name} has no anomaly maps")
        return (recon - x).pow(2).sum(1)


class MapDetector(Detector):
    """A detector whose scores are read from its anomaly maps, both computed in one pass by
    :meth:`score_and_map` (``patch_knn``, ``synth_seg``, ``fusion``): ``score`` and ``anomaly_map`` are its halves."""

    has_maps = True

    @torch.no_grad()
    def score(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.score_and_map(x)[0]

    @torch.no_grad()
    def anomaly_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.score_and_map(x)[1]
