"""DVC stage threshold: pick the decision threshold from validation-normal scores."""

import click

from oddpix.steps.threshold import threshold
from oddpix.stage import stage_command


@stage_command
@click.option("--scores", required=True)
@click.option("--out", required=True)
def main(params, scores, out):
    """Apply the threshold rule of params.yaml."""
    threshold(params, scores, out)


if __name__ == "__main__":
    main()
