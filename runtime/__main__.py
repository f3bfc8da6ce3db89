"""``python -m mnistkit.runtime IMAGE|DIR ...``: the classify script on a base install."""

from mnistkit.runtime.cli import main

if __name__ == "__main__":
    main()
