"""Benchmarks that print figures (never timed tests).

``measure``: size, load time, latency, throughput, accuracy and peak memory of exported models and
their Keras sources, behind ``mnistkit bench``. ``runtime_overhead``: the device runtime's cold
start and per-call overhead over a bare interpreter (``python -m mnistkit.tools.bench.runtime_overhead``).
``bulk``: throughput and memory of ``mnistkit classify`` on a large folder, --jobs and --engine ray
(``python -m mnistkit.tools.bench.bulk``).
``soak``: RSS over a million calls and threads against a sequential run (``make soak``).
"""
