"""DVC stage evaluate: AUROC, AUPRC and decision metrics on the test split; ROC and PR curves."""

from oddpix.stage import stage_main

if __name__ == "__main__":
    stage_main("evaluate")
