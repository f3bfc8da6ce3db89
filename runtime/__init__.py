"""mnistkit.runtime."""
