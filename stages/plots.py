"""DVC stage plots: score histograms with the threshold, reconstructions, extremes, latent space."""

import click

from oddpix.steps.plots import plots
from oddpix.stage import stage_command


@stage_command
@click.option("--data", "data_dir", required=True)
@click.option("--model", "model_path", required=True)
@click.option("--scores", required=True)
@click.option("--threshold", "threshold_path", required=True)
@click.option("--latents", required=True)
@click.option("--kde", "kde_path", required=True)
@click.option("--out", required=True)
def main(params, data_dir, model_path, scores, threshold_path, latents, kde_path, out):
    """Draw the PNG figures."""
    plots(params, data_dir, model_path, scores, threshold_path, latents, kde_path, out)


if __name__ == "__main__":
    main()
