"""Fuzzing harness for the device runtime: seeded structural mutants of model files and images,
run in child processes with a timeout and a memory cap (``python -m mnistkit.tools.fuzz --help``)."""
