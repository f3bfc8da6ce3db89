"""Re-run issue 10's table: recurrent models at several training stages -> full-int8 TFLite parity.

    python -m mnistkit.tools.scripts.recurrent_int8_table [--out runs/issue10] [--json]

Trains each row's model with ``mnistkit train`` (seeded; skipped when the run folder already holds
a model), exports it with ``mnistkit export --format tflite --quantize int8`` (parity on all 10,000
test images) and prints model, train flags, Keras accuracy, int8 accuracy, agreement, size and
whether the file was written or refused. The pretrained rows use models/pretrained as they are.
Takes ~10 minutes on 2 cores (training dominates).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[2]
BRIEF = ["--limit", "20000", "--epochs", "3"]
# (model, train flags or None for the committed pretrained model, extra export flags)
ROWS: list[tuple[str, list[str] | None, list[str]]] = [
    ("lstm", BRIEF, []),
    ("lstm", BRIEF, ["--calibration-samples", "2000"]),
    ("bilstm", BRIEF, []),
    ("rnn", BRIEF, []),
    ("lstm", ["--limit", "3000", "--epochs", "2"], []),
    ("lstm", ["--epochs", "2"], []),
    ("rnn", ["--epochs", "2"], []),
    ("lstm", None, []),
    ("bilstm", None, []),
    ("rnn", None, []),
]


def _mnistkit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mnistkit.tools.cli", *args], capture_output=True, text=True)


def _source(model: str, flags: list[str] | None, out: Path) -> tuple[Path, str]:
    if flags is None:
        return ROOT / "models" / "pretrained" / f"{model}.keras", "pretrained"
    run = out / f"{model}_{'_'.join(f.strip('-') for f in flags)}"
    if not (run / "model.keras").is_file():
        proc = _mnistkit("train", model, *flags, "--out", str(run), "--force")
        if proc.returncode:
            raise click.ClickException(f"training {model} {' '.join(flags)} failed: {proc.stderr.strip()[-300:]}")
    return run / "model.keras", " ".join(flags)


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/issue10"),
              show_default=True, help="Folder for the training runs and exports.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON instead of a Markdown table.")
def main(out: Path, as_json: bool) -> None:
    """Train (or reuse) each row's model, export full int8 and print the parity table."""
    rows = []
    for i, (model, flags, extra) in enumerate(ROWS, 1):
        click.echo(f"[{i}/{len(ROWS)}] {model} {flags or 'pretrained'} {' '.join(extra)}", err=True)
        source, label = _source(model, flags, out)
        proc = _mnistkit("export", str(source), "--format", "tflite", "--quantize", "int8", "--out",
                         str(out / f"exports_{i}"), "--force", "--json", *extra)
        (o,) = json.loads(proc.stdout)
        p = o["parity"] or {}
        rows.append({"model": model, "train": label + (" " + " ".join(extra) if extra else ""),
                     "keras_accuracy": p.get("source_accuracy"), "int8_accuracy": p.get("artifact_accuracy"),
                     "agreement": p.get("agreement"), "size_ratio": o.get("size_ratio_vs_float32"),
                     "result": "written" if o["ok"] else "refused"})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo("| model (train flags) | Keras accuracy | int8 TFLite | agreement | size vs float32 | result |")
    click.echo("|---|---|---|---|---|---|")
    for r in rows:
        click.echo(f"| {r['model']} `{r['train']}` | {_pct(r['keras_accuracy'])} | {_pct(r['int8_accuracy'])}"
                   f"{_delta(r)} | {_pct(r['agreement'])} | {_ratio(r['size_ratio'])} | {r['result']} |")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _delta(row: dict) -> str:
    if row["int8_accuracy"] is None or row["keras_accuracy"] is None:
        return ""
    return f" ({(row['int8_accuracy'] - row['keras_accuracy']) * 100:+.2f} pp)"


def _ratio(value: float | None) -> str:
    # Each row exports int8 alone, so there is a float32 file to compare with only when one is already beside it.
    return "-" if value is None else f"{value:.2f}x"


if __name__ == "__main__":
    main()
