"""DVC stage split: build the labeled train / val / test splits of the anomaly protocol."""

import click

from oddpix.steps.split import split
from oddpix.stage import stage_command


@stage_command
@click.option("--raw", required=True)
@click.option("--out", required=True)
@click.option("--summary", required=True)
def main(params, raw, out, summary):
    """Split by protocol; write counts per label and kind."""
    split(params, raw, out, summary)


if __name__ == "__main__":
    main()
