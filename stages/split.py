"""DVC stage split: build the labeled train / val / test splits of the anomaly protocol."""

from oddpix.stage import stage_main

if __name__ == "__main__":
    stage_main("split")
