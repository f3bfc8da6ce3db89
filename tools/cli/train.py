"""`mnistkit train` and `mnistkit train-all`."""

from __future__ import annotations

from pathlib import Path

import click

from mnistkit.models.augment import PRESETS
from mnistkit.models.zoo import MODEL_NAMES


def _options(fn):
    opts = [
        click.option("--epochs", type=int, help="Maximum epochs (recipe default: 15)."),
        click.option("--batch-size", type=int, help="Batch size (recipe default)."),
        click.option("--learning-rate", type=float, help="Initial Adam learning rate, cosine-decayed (recipe default)."),
        click.option("--validation-split", type=float, help="Share of training images held out for early stopping (default 0.1)."),
        click.option("--patience", type=int, help="Epochs without validation-loss improvement before stopping (default 4)."),
        click.option("--seed", type=int, help="Random seed; the same seed repeats the run exactly (default 42)."),
        click.option("--augment", type=click.Choice(list(PRESETS)),
                     help="On-the-fly augmentation preset (recipe default: full for cnn/lstm/bilstm, light for mlp/rnn, none for linear)."),
        click.option("--limit", type=int, help="Train on only N (random) training images, e.g. for a quick try."),
        click.option("--data-dir", type=click.Path(file_okay=False), help="Folder with the four MNIST IDX files (else $MNISTKIT_DATA, the Keras cache, or download)."),
        click.option("--force", is_flag=True, help="Replace an existing output folder."),
        click.option("--verbose", is_flag=True, help="Show TensorFlow's own start-up and tf.data messages and Keras' progress output."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _recipe(name: str, overrides: dict):
    from mnistkit.models.recipes import default_recipe

    return default_recipe(name).replace(**overrides)


def _run_one(name: str, out: Path, limit, data_dir, force: bool, overrides: dict, publish_dir: Path | None = None,
             verbose: bool = False) -> dict:
    from mnistkit.models.data import load_mnist
    from mnistkit.models.recipes import validate_recipe
    from mnistkit.runtime.errors import OutputExistsError
    from mnistkit.models.extras import require_train_stack
    from mnistkit.tools.training.quiet import filtered_stderr
    from mnistkit.tools.training.runs import publish, write_run

    require_train_stack("mnistkit train")

    recipe = _recipe(name, overrides)
    validate_recipe(recipe, limit)
    if out.exists() and not force:
        raise OutputExistsError(f"output folder {out} already exists; choose another --out or pass --force")
    mnist = load_mnist(data_dir)
    with filtered_stderr(enabled=not verbose) as terminal:
        from mnistkit.models.training import train, validation_count  # heavy: imports Keras

        augment = f", augmentation {recipe.augment}" if recipe.augmentation.enabled else ""
        click.echo(f"Training {name} on {limit or len(mnist.x_train)} images (seed {recipe.seed}, "
                   f"up to {recipe.epochs} epochs{augment})...", err=True)
        if verbose:
            result = train(name, mnist, recipe, limit=limit, verbose=1 if terminal.isatty() else 2)
        else:
            from mnistkit.tools.training.progress import EpochProgress

            total = min(limit or len(mnist.x_train), len(mnist.x_train))
            images = total - validation_count(total, recipe)
            progress = EpochProgress(images, recipe.batch_size, recipe.epochs, terminal)
            result = train(name, mnist, recipe, limit=limit, verbose=0, callbacks=[progress])
    write_run(result, mnist, out, force=force)
    accuracy = float((result.test_probabilities.argmax(axis=1) == mnist.y_test).mean())
    if result.interrupted:
        click.echo(f"Interrupted: kept the best checkpoint so far (epoch {result.best_epoch}) in {out}", err=True)
    click.echo(f"{name}: test accuracy {accuracy:.2%} (best epoch {result.best_epoch}/{result.epochs_run}, {result.seconds:.0f} s) -> {out}")
    if publish_dir is not None:
        click.echo(f"published {publish(out, publish_dir)}")
    return {"model": name, "accuracy": accuracy, "out": str(out), "interrupted": result.interrupted}


@click.command()
@click.argument("model", type=click.Choice(MODEL_NAMES))
@_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Run directory (default runs/MODEL).")
def train(model, out, limit, data_dir, force, verbose, **overrides):
    """Train MODEL (one of the zoo) on MNIST with its default recipe.

    Writes model.keras (+ manifest), history.json, metrics.json and PNG plots (training curves,
    confusion matrix, misclassified digits) into the run directory. Ctrl-C keeps the best epoch so far.
    """
    out = out or Path("runs") / model
    _run_one(model, out, limit, data_dir, force, overrides, verbose=verbose)
    click.echo(f"Next: mnistkit evaluate {out}   |   mnistkit export {out} --format tflite --quantize int8")


@click.command("train-all")
@click.option("--models", "names", default=",".join(MODEL_NAMES), show_default=True, help="Comma-separated zoo models.")
@_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"), show_default=True, help="Parent folder of the run directories.")
@click.option("--publish", "publish_dir", type=click.Path(file_okay=False, path_type=Path), help="Also copy each <model>.keras + manifest here (e.g. models/pretrained).")
def train_all(names, out, limit, data_dir, force, publish_dir, verbose, **overrides):
    """Train every zoo model with its default recipe and seed (reproducible pretrained zoo)."""
    from mnistkit.models.zoo import check_name

    selected = [check_name(n.strip()) for n in names.split(",") if n.strip()]
    rows = [_run_one(n, out / n, limit, data_dir, force, overrides, publish_dir, verbose) for n in selected]
    click.echo("\n".join(f"{r['model']:>7}: {r['accuracy']:.2%}" for r in rows))
