"""DVC stage train: fit the detector chosen by `model` in params.yaml."""

import click

from oddpix.steps.train import train
from oddpix.stage import stage_command


@stage_command
@click.option("--data", "data_dir", default="data/prepared", show_default=True)
@click.option("--model-out", default="models/detector.pt", show_default=True)
@click.option("--history", default="plots/train/history.csv", show_default=True)
@click.option("--metrics", "metrics_path", default="metrics/train.json", show_default=True)
@click.option("--samples", default="plots/samples", show_default=True, help="training sample grids (GANs)")
def main(params, data_dir, model_out, history, metrics_path, samples):
    """Train on the normal training images; early-stop on the validation split."""
    train(params, data_dir, model_out, history, metrics_path, samples)


if __name__ == "__main__":
    main()
