"""Overhead of the oddpix training loop over a bare PyTorch loop of the same model.

Both train the same detector (same weights at the start, same data tensor, same batch order) for the
same number of epochs; the difference is what oddpix adds: progress, per-epoch logging, validation loss,
early-stopping bookkeeping. Also times batched scoring of the test split. Run:

    python benchmarks/speed.py                   # generated 28x28 data, cae defaults, 3 epochs
    python benchmarks/speed.py --model ae --epochs 5 --n-train 6000
"""

from __future__ import annotations

import time

import click
import torch

from oddpix.config import parse_params
from oddpix.data.synthetic import pattern_images
from oddpix.models import FitData, build_detector
from oddpix.runtime import batched, seed_everything
from oddpix.training import FitContext


def bare_loop(det, x: torch.Tensor, epochs: int, batch_size: int, lr: float, gen: torch.Generator) -> None:
    opt = torch.optim.Adam(det.parameters(), lr=lr)
    det.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for s in range(0, len(x), batch_size):
            batch = x[order[s:s + batch_size]]
            loss = det.pixel_loss(det(batch), batch).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


@click.command()
@click.option("--model", default="cae", show_default=True)
@click.option("--epochs", default=3, show_default=True)
@click.option("--n-train", default=5400, show_default=True)
@click.option("--n-val", default=600, show_default=True)
@click.option("--repeats", default=2, show_default=True, help="best of N for each timing")
def main(model, epochs, n_train, n_val, repeats):
    params = parse_params({"model": model, "device": "cpu", "models": {model: {"epochs": epochs, "patience": epochs}}})
    cfg = params.model_config
    labels = torch.zeros(n_train + n_val, dtype=torch.long).numpy()
    x = torch.from_numpy(pattern_images(labels, 28, seed=0)).float().div(255).unsqueeze(1)
    train_x, val_x = x[:n_train], x[n_train:]
    times = {"bare": [], "oddpix": [], "oddpix_no_val": []}
    for _ in range(repeats):
        for kind in times:
            gen = seed_everything(0)
            det = build_detector(model, cfg, (1, 28, 28))
            start = time.perf_counter()
            if kind == "bare":
                bare_loop(det, train_x, epochs, cfg.batch_size, cfg.lr, gen)
            else:
                det.fit(FitData(train_x, val_x if kind == "oddpix" else None),
                        FitContext(torch.device("cpu"), gen, log=lambda _: None, progress=True))
            times[kind].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    det.eval()
    start = time.perf_counter()
    batched(det.score, x, 512)
    score_s = time.perf_counter() - start
    print(f"{model}: {epochs} epochs on {n_train} images (torch threads: {torch.get_num_threads()})")
    print(f"  bare PyTorch loop        {best['bare']:.2f}s")
    print(f"  oddpix loop, no val      {best['oddpix_no_val']:.2f}s  overhead "
          f"{100 * (best['oddpix_no_val'] / best['bare'] - 1):+.1f}%")
    print(f"  oddpix loop + val loss   {best['oddpix']:.2f}s  overhead "
          f"{100 * (best['oddpix'] / best['bare'] - 1):+.1f}%  (val loss on {n_val} images each epoch)")
    print(f"  batched scoring          {len(x) / score_s:,.0f} images/s")


if __name__ == "__main__":
    main()
