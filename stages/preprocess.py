"""DVC stage preprocess: scale, resize and normalize the splits (statistics from train only)."""

from oddpix.stage import stage_main

if __name__ == "__main__":
    stage_main("preprocess")
