"""The ``mnistkit`` command line: a thin click adapter over the library, one module per command.

Subcommands are imported lazily (click's "Lazily Loading Subcommands" pattern) so that
``mnistkit --help`` and ``mnistkit classify ...`` never import TensorFlow. Library errors
(``MnistkitError``) become one-line messages through ``mnistkit.runtime.guard``: exit code 2 for
usage errors, 1 for failures. Adding a command: a module here with a click command, one row in
``SUBCOMMANDS``.
"""

from __future__ import annotations

import importlib
import os

import click

from mnistkit.runtime.guard import click_guarded

# name -> ("module:attribute", one-line help shown by `mnistkit --help` without importing it)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("mnistkit.tools.cli.train:train", "Train a zoo model on MNIST into a run directory."),
    "train-all": ("mnistkit.tools.cli.train:train_all", "Train every zoo model with its default recipe."),
    "evaluate": ("mnistkit.tools.cli.evaluate:evaluate", "Evaluate a model on the MNIST test set."),
    "export": ("mnistkit.tools.cli.export:export", "Export a Keras model to TFLite/ONNX, float or quantized."),
    "parity": ("mnistkit.tools.cli.parity:parity", "Prove exported models classify like their Keras source."),
    "classify": ("mnistkit.runtime.cli:classify", "Classify digit images with an exported model (no TensorFlow)."),
    "bench": ("mnistkit.tools.cli.bench:bench", "Measure size, latency, throughput and memory of models."),
    "report": ("mnistkit.tools.cli.report:report", "Regenerate REPORT.md and its charts."),
    "serve": ("mnistkit.tools.cli.serve:serve", "Serve a web page and JSON API that classify digits."),
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it is run or asked for help."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS:
            return None
        target, short = SUBCOMMANDS[name]
        if ctx.resilient_parsing and name != ctx.invoked_subcommand:
            return click.Command(name, short_help=short)  # listing only: stay light
        module, attr = target.split(":")
        try:
            command = getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            raise click.ClickException(
                f"`mnistkit {name}` needs packages that are not installed ({exc.name}); "
                'install them with: pip install "mnistkit[train]"'
            ) from None
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, short) for name, (_, short) in SUBCOMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        return click_guarded(super().invoke, ctx)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mnistkit")
def cli() -> None:
    """mnistkit: train, export, prove and run handwritten-digit classifiers on edge devices.

    \b
    Typical path:
      mnistkit train lstm
      mnistkit export runs/lstm --format tflite --quantize int8
      mnistkit parity runs/lstm/model.keras exports/lstm_int8.tflite
      mnistkit bench exports/
      mnistkit classify --model exports/lstm_int8.tflite digit.png
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
