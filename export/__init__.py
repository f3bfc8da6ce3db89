"""mnistkit.export."""
