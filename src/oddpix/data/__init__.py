"""Data sources, anomaly protocols (labeled splits) and corruptions."""
