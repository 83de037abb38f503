"""DVC stage export: the trained detector as a bundle (ONNX + manifest) that scores without PyTorch."""

from oddpix.stage import stage_main

if __name__ == "__main__":
    stage_main("export")
