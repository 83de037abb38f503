"""DVC stage threshold: pick the decision threshold from validation-normal scores."""

import click

from oddpix.steps.threshold import threshold
from oddpix.stage import stage_command


@stage_command
@click.option("--scores", default="data/scores", show_default=True)
@click.option("--out", default="models/threshold.json", show_default=True)
def main(params, scores, out):
    """Apply the threshold rule of params.yaml."""
    threshold(params, scores, out)


if __name__ == "__main__":
    main()
