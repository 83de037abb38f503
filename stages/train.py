"""DVC stage train: fit the detector chosen by `model` in params.yaml."""

import click

from oddpix.steps.train import train
from oddpix.stage import stage_command


@stage_command
@click.option("--data", "data_dir", required=True)
@click.option("--model-out", required=True)
@click.option("--history", required=True)
@click.option("--metrics", "metrics_path", required=True)
@click.option("--samples", required=True, help="training sample grids (GANs)")
def main(params, data_dir, model_out, history, metrics_path, samples):
    """Train on the normal training images; early-stop on the validation split."""
    train(params, data_dir, model_out, history, metrics_path, samples)


if __name__ == "__main__":
    main()
