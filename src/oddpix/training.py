"""The shared training loop: in-memory batches, progress, one log line per epoch, early stopping.

Detectors supply a ``train_step`` (one optimisation step on a batch, returns its losses) and a
``val_loss`` (mean loss of a batch without gradients); the loop does the rest the same way for every
model: seeded shuffling of whole-dataset tensors (no DataLoader, no per-image Python), a tqdm bar,
``epoch 3/20 loss=... val_loss=...`` lines, and early stopping on the validation loss that restores the
best weights. The validation split holds only training-set images, never test images.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

import torch
from tqdm.auto import tqdm

from .errors import OddpixError
from .schema import num


@dataclass(frozen=True)
class TrainConfig:
    """Knobs of the shared training loop; every model section has them."""

    epochs: int = num(20, ge=1)
    batch_size: int = num(128, ge=1)
    lr: float = num(1e-3, gt=0.0)
    weight_decay: float = num(0.0, ge=0.0)
    patience: int = num(5, ge=1)


@dataclass
class FitContext:
    device: torch.device
    generator: torch.Generator
    log: Callable[[str], None] = field(default=lambda msg: print(msg, flush=True))
    progress: Optional[bool] = None  # None: a bar only when stderr is a terminal
    sample_dir: Optional[Path] = None  # where models that draw training samples put them


# Training data: an image tensor, a tuple of aligned tensors (images, labels, weights ...), or a number of
# images per epoch that the module draws itself (each step then gets the batch's positions in the epoch).
Data = Union[torch.Tensor, tuple, int]


def optimize(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> float:
    """One optimisation step on ``loss``; returns its value."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def _to(data: Data, device: torch.device) -> Data:
    if isinstance(data, int):
        return data
    return tuple(t.to(device) for t in data) if isinstance(data, tuple) else data.to(device)


def _take(data: Data, index) -> Data:
    if isinstance(data, int):
        return index
    return tuple(t[index] for t in data) if isinstance(data, tuple) else data[index]


def _len(data: Data) -> int:
    if isinstance(data, int):
        return data
    return len(data[0]) if isinstance(data, tuple) else len(data)


def _epoch(module: torch.nn.Module, train_x: Data, cfg: TrainConfig, ctx: FitContext,
           train_step: Callable[[Data], dict[str, float]], desc: str, show_bar: bool) -> dict[str, float]:
    """One pass over the training data in seeded random batches; the mean of each loss per image."""
    n = _len(train_x)
    module.train()
    order = torch.randperm(n, generator=ctx.generator).to(ctx.device)
    sums: dict[str, float] = {}
    bar = tqdm(range(max(1, math.ceil(n / cfg.batch_size))), desc=desc, leave=False, disable=not show_bar,
               mininterval=0.5, file=sys.stderr)
    for b in bar:
        idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
        losses = train_step(_take(train_x, idx))
        for key, value in losses.items():
            sums[key] = sums.get(key, 0.0) + value * len(idx)
        if show_bar:
            bar.set_postfix(loss=f"{losses.get('loss', next(iter(losses.values()))):.4f}", refresh=False)
    bar.close()
    return {k: v / n for k, v in sums.items()}


@torch.no_grad()
def _validate(module: torch.nn.Module, val_x: Data, batch_size: int,
              val_loss: Callable[[Data], torch.Tensor]) -> float:
    """The mean validation loss per image, in ``eval()`` mode."""
    module.eval()
    total, n_val = 0.0, _len(val_x)
    for s in range(0, n_val, batch_size):
        chunk = _take(val_x, slice(s, s + batch_size))
        total += float(val_loss(chunk)) * _len(chunk)
    return total / n_val


@dataclass
class _EarlyStopping:
    """Keeps the weights of the best validation epoch; says stop after ``patience`` epochs without one."""

    patience: int
    best_val: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    best_state: Optional[dict] = None

    def update(self, module: torch.nn.Module, epoch: int, val: float) -> bool:
        if val < self.best_val - 1e-7:
            self.best_val, self.best_epoch, self.bad_epochs = val, epoch, 0
            self.best_state = copy.deepcopy(module.state_dict())
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= self.patience


def _check_finite(row: dict, name: str, epoch: int, cfg: TrainConfig) -> None:
    """Stop at the first epoch whose loss is NaN or infinite: the model diverged and nothing is saved."""
    bad = {k: v for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        model = name.split()[0]
        raise OddpixError(f"{name}: the training loss is not finite at epoch {epoch} "
                          f"({', '.join(f'{k}={v}' for k, v in bad.items())}): the model diverged; nothing was "
                          f"saved. Try a lower learning rate (models.{model}.lr is {cfg.lr:g}; e.g. "
                          f"-S models.{model}.lr={cfg.lr / 10:g})")


def train_loop(module: torch.nn.Module, train_x: Data, val_x: Optional[Data], cfg: TrainConfig,
               ctx: FitContext, train_step: Callable[[Data], dict[str, float]],
               val_loss: Callable[[Data], torch.Tensor], name: str = "train") -> list[dict]:
    """Run ``cfg.epochs`` epochs; returns the history (one dict per epoch).

    ``train_x`` / ``val_x`` are image tensors or tuples of aligned tensors (images, labels, weights ...);
    the steps receive batches of the same form.
    """
    train_x = _to(train_x, ctx.device)
    val_x = _to(val_x, ctx.device) if val_x is not None and _len(val_x) else None
    history: list[dict] = []
    stopping = _EarlyStopping(cfg.patience)
    show_bar = sys.stderr.isatty() if ctx.progress is None else ctx.progress
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        row = {"epoch": epoch, **_epoch(module, train_x, cfg, ctx, train_step, f"{name} epoch {epoch}/{cfg.epochs}",
                                        show_bar)}
        if val_x is not None:
            row["val_loss"] = _validate(module, val_x, cfg.batch_size, val_loss)
        row["seconds"] = round(time.perf_counter() - start, 3)
        history.append(row)
        _check_finite(row, name, epoch, cfg)
        ctx.log(f"{name} epoch {epoch}/{cfg.epochs} " + " ".join(
            f"{k}={v:.5g}" for k, v in row.items() if k not in ("epoch", "seconds")) + f" ({row['seconds']:.1f}s)")
        if val_x is not None and stopping.update(module, epoch, row["val_loss"]):
            ctx.log(f"early stop: val_loss has not improved for {cfg.patience} epochs; "
                    f"keeping epoch {stopping.best_epoch} (val_loss={stopping.best_val:.5g})")
            break
    if stopping.best_state is not None:
        module.load_state_dict(stopping.best_state)
    module.eval()
    return history
