"""DVC stage encode: latent codes of every split, and a kernel density fitted on the training codes."""

from oddpix.stage import stage_main

if __name__ == "__main__":
    stage_main("encode")
