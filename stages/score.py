"""DVC stage score: per-image anomaly score components for the validation and test splits."""

import click

from oddpix.steps.score import score
from oddpix.stage import stage_command


@stage_command
@click.option("--data", "data_dir", required=True)
@click.option("--model", "model_path", required=True)
@click.option("--latents", required=True)
@click.option("--kde", "kde_path", required=True)
@click.option("--out", required=True)
def main(params, data_dir, model_path, latents, kde_path, out):
    """Score val and test images in batches."""
    score(params, data_dir, model_path, latents, kde_path, out)


if __name__ == "__main__":
    main()
