"""DVC stage params: validate the whole params.yaml (any edit runs this stage; a typo stops `dvc repro`)."""

import click

from oddpix.stage import stage_command
from oddpix.steps.params import params as check


@stage_command
@click.option("--out", required=True, help="the marker file the download stage depends on")
def main(params, out):
    """Validate params.yaml (the stage wrapper does) and write the marker."""
    check(params, out)


if __name__ == "__main__":
    main()
