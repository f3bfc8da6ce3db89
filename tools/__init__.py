"""mnistkit.tools."""
