"""DVC stage params: validate the whole params.yaml (any edit runs this stage; a typo stops `dvc repro`)."""

from oddpix.stage import stage_main

if __name__ == "__main__":
    stage_main("params")
