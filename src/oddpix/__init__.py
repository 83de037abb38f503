"""oddpix: a reproducible DVC pipeline for deep anomaly detection on images."""

__version__ = "0.1.0"
