"""mnistkit.tools: everything above the library that a person runs.

``cli`` (the ``mnistkit`` click commands, one module per command), ``bench`` (benchmarks printing
figures), ``report`` (REPORT.md, charts, metrics), ``training`` (training run folders), ``robustness`` (accuracy
under controlled shifts), ``scripts``
(argparse developer scripts), ``pi`` (the emulated Raspberry Pi check and runtime compatibility
matrix), ``fuzz`` (seeded mutants of model files and images run in child processes; ``make fuzz``). The export pipeline and parity live in ``mnistkit.export``, the device runtime in
``mnistkit.runtime``.
"""
