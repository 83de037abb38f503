"""DVC stage download: find (mirror, system folder) or download the datasets; verify their checksums."""

import click

from oddpix.steps.download import download
from oddpix.stage import stage_command


@stage_command
@click.option("--out", required=True, help="folder for <dataset>.npz")
@click.option("--cache", required=True, help="where torchvision downloads go")
def main(params, out, cache):
    """Materialize the raw datasets as uint8 arrays."""
    download(params, out, cache)


if __name__ == "__main__":
    main()
