"""DVC stage encode: latent codes of every split, and a kernel density fitted on the training codes."""

import click

from oddpix.steps.encode import encode
from oddpix.stage import stage_command


@stage_command
@click.option("--data", "data_dir", required=True)
@click.option("--model", "model_path", required=True)
@click.option("--latents", required=True)
@click.option("--kde", "kde_path", required=True)
def main(params, data_dir, model_path, latents, kde_path):
    """Encode images to latent codes and fit the KDE."""
    encode(params, data_dir, model_path, latents, kde_path)


if __name__ == "__main__":
    main()
