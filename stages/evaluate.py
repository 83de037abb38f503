"""DVC stage evaluate: AUROC, AUPRC and decision metrics on the test split; ROC and PR curves."""

import click

from oddpix.steps.evaluate import evaluate
from oddpix.stage import stage_command


@stage_command
@click.option("--scores", required=True)
@click.option("--threshold", "threshold_path", required=True)
@click.option("--metrics", "metrics_path", required=True)
@click.option("--curves", required=True)
@click.option("--predictions", required=True, help="CSV: every test image's source, score, p-value and decision")
def main(params, scores, threshold_path, metrics_path, curves, predictions):
    """Evaluate the test scores and the thresholded decisions."""
    evaluate(params, scores, threshold_path, metrics_path, curves, predictions)


if __name__ == "__main__":
    main()
