"""DVC stage evaluate: AUROC, AUPRC and decision metrics on the test split; ROC and PR curves."""

import click

from oddpix.steps.evaluate import evaluate
from oddpix.stage import stage_command


@stage_command
@click.option("--scores", default="data/scores", show_default=True)
@click.option("--threshold", "threshold_path", default="models/threshold.json", show_default=True)
@click.option("--metrics", "metrics_path", default="metrics/metrics.json", show_default=True)
@click.option("--curves", default="plots/curves", show_default=True)
def main(params, scores, threshold_path, metrics_path, curves):
    """Evaluate the test scores and the thresholded decisions."""
    evaluate(params, scores, threshold_path, metrics_path, curves)


if __name__ == "__main__":
    main()
