"""mnistkit.models."""
