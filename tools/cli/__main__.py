"""``python -m mnistkit.tools.cli``: the ``mnistkit`` command without the console script."""

from mnistkit.tools.cli import main

main()
