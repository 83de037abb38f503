"""DVC stage preprocess: scale, resize and normalize the splits (statistics from train only)."""

import click

from oddpix.steps.preprocess import preprocess
from oddpix.stage import stage_command


@stage_command
@click.option("--split", "split_dir", required=True)
@click.option("--out", required=True)
def main(params, split_dir, out):
    """Turn uint8 images into the float tensors the models take."""
    preprocess(params, split_dir, out)


if __name__ == "__main__":
    main()
