"""The robustness section of REPORT.md, from ``reports/robustness.json`` (tools/robustness_matrix.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from mnistkit.tools.robustness.benchmark import PHOTOS

# Goals for the default device model (issue 16): clean accuracy, mean over the shifts, worst shift.
GOALS = {"clean": 0.994, "mean": 0.97, "worst": 0.90}


def goal_lines(label: str, acc: dict) -> list[str]:
    """One line per goal for the model ``label``: measured value, goal, met or missed by how much."""
    names = {"clean": "clean MNIST test accuracy", "mean": "mean accuracy over the shifts",
             "worst": f"worst shift ({acc.get('worst_shift', '?')})"}
    lines = []
    for key, goal in GOALS.items():
        value = acc[key]
        verdict = "met" if value >= goal else f"**missed by {100 * (goal - value):.2f} pp**"
        lines.append(f"- {label}: {names[key]} {value:.2%} (goal >= {goal:.1%}): {verdict}")
    return lines


def _column_order(label: str) -> tuple:
    """Zoo order, the default model last, each model's "before" column first."""
    from mnistkit.models.zoo import MODEL_NAMES

    order = [*MODEL_NAMES, "default.tflite"]
    base = label.split()[0]
    return (order.index(base) if base in order else len(order), "before" not in label, label)


def section(path: Path, charts: Path, rel: Callable[[Path], Path], default_label: str | None = None) -> list[str]:
    """Markdown parts of the robustness section (empty when ``path`` does not exist)."""
    if not path.is_file():
        return []
    from mnistkit.tools.report.plots import accuracy_grid

    doc = json.loads(path.read_text())
    models = doc["models"]
    labels = sorted(models, key=_column_order)
    sets = [name for name in doc["sets"] if name in models[labels[0]]]
    lines = ["| set | " + " | ".join(labels) + " |", "|" + "---|" * (len(labels) + 1)]
    for name in sets:
        lines.append(f"| {name} | " + " | ".join(f"{models[m][name]:.2%}" for m in labels) + " |")
    lines.append("| **mean over shifts** | " + " | ".join(f"**{models[m]['mean']:.2%}**" for m in labels) + " |")
    lines.append("| **worst shift** | " + " | ".join(f"{models[m]['worst_shift']} {models[m]['worst']:.1%}"
                                                  for m in labels) + " |")
    what = "\n".join(f"- `{name}`: {doc['sets'][name]}" for name in sets)
    chart = accuracy_grid([[models[m][s] for m in labels] for s in sets], sets, labels,
                          charts / "robustness.png", "accuracy under shifts (through the runtime preprocessing)")
    refused = ", ".join(f"{k} {v}" for k, v in doc.get("refused", {}).items() if v) or "none"
    parts = [
        "## Robustness: MNIST test digits under controlled shifts",
        f"Measured by `python -m mnistkit.tools.robustness.matrix` on {doc['count']:,} test images (seed {doc['seed']}) "
        f"and {doc['photos']} photo-like images ({PHOTOS}); `mnistkit evaluate MODEL --robustness` prints the same "
        "table for one model. Every image goes through the runtime preprocessing first, as a user's image would; "
        f"images it refuses count as wrong (refused: {refused}). \"before\" columns are the models committed before the "
        "augmented recipes.",
        "\n".join(lines),
        "The mean is over the shift rows (not clean, not photos). The sets:\n" + what,
        f"![accuracy under shifts]({rel(chart)})",
    ]
    if default_label and default_label in models:
        parts += ["### Goals of the default device model", "\n".join(goal_lines(default_label, models[default_label]))]
    return parts
