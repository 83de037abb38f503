"""DVC stage plots: score histograms with the threshold, reconstructions, extremes, latent space."""

from oddpix.stage import stage_main

if __name__ == "__main__":
    stage_main("plots")
