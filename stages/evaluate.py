"""DVC stage evaluate: AUROC, AUPRC and decision metrics on the test split; ROC and PR curves."""

import click

from oddpix.steps.evaluate import evaluate
from oddpix.stage import stage_command


@stage_command
@click.option("--scores", required=True)
@click.option("--threshold", "threshold_path", required=True)
@click.option("--metrics", "metrics_path", required=True)
@click.option("--curves", required=True)
def main(params, scores, threshold_path, metrics_path, curves):
    """Evaluate the test scores and the thresholded decisions."""
    evaluate(params, scores, threshold_path, metrics_path, curves)


if __name__ == "__main__":
    main()
