"""DVC stage encode: latent codes of every split, and a kernel density fitted on the training codes."""

import click

from oddpix.steps.encode import encode
from oddpix.stage import stage_command


@stage_command
@click.option("--data", "data_dir", default="data/prepared", show_default=True)
@click.option("--model", "model_path", default="models/detector.pt", show_default=True)
@click.option("--latents", default="data/latents.npz", show_default=True)
@click.option("--kde", "kde_path", default="models/kde.pt", show_default=True)
def main(params, data_dir, model_path, latents, kde_path):
    """Encode images to latent codes and fit the KDE."""
    encode(params, data_dir, model_path, latents, kde_path)


if __name__ == "__main__":
    main()
