"""DVC stage train: fit the detector chosen by `model` in params.yaml."""

from oddpix.stage import stage_main

if __name__ == "__main__":
    stage_main("train")
