"""DVC stage plots: score histograms with the threshold, reconstructions, extremes, latent space."""

import click

from oddpix.steps.plots import plots
from oddpix.stage import stage_command


@stage_command
@click.option("--data", "data_dir", default="data/prepared", show_default=True)
@click.option("--model", "model_path", default="models/detector.pt", show_default=True)
@click.option("--scores", default="data/scores", show_default=True)
@click.option("--threshold", "threshold_path", default="models/threshold.json", show_default=True)
@click.option("--latents", default="data/latents.npz", show_default=True)
@click.option("--kde", "kde_path", default="models/kde.pt", show_default=True)
@click.option("--out", default="plots/images", show_default=True)
def main(params, data_dir, model_path, scores, threshold_path, latents, kde_path, out):
    """Draw the PNG figures."""
    plots(params, data_dir, model_path, scores, threshold_path, latents, kde_path, out)


if __name__ == "__main__":
    main()
