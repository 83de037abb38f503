"""DVC stage score: per-image anomaly score components for the validation and test splits."""

from oddpix.stage import stage_main

if __name__ == "__main__":
    stage_main("score")
