"""DVC stage threshold: pick the decision threshold from validation-normal scores."""

from oddpix.stage import stage_main

if __name__ == "__main__":
    stage_main("threshold")
