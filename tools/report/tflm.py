"""REPORT.md's "Microcontrollers" section, generated from the manifests of the pretrained models'
``--format tflm`` exports (``make tflm-exports``): flash, tensor arena, agreement and accuracy on the
TFLM interpreter, which common boards each model fits, and the reason printed for a refused model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mnistkit.models.zoo import MODEL_NAMES

#: Share of a board's flash and RAM a model may take: the rest is for the TFLM library, the
#: application, the stack and the heap.
HEADROOM = 0.75


@dataclass(frozen=True)
class Board:
    """A common microcontroller board: on-chip RAM and the flash a program can use."""

    name: str
    chip: str
    ram_kb: int
    flash_kb: int


#: From the vendors' datasheets. ESP32-S3: internal SRAM only (PSRAM is optional) and the 8 MB
#: flash of the common ESP32-S3-DevKitC-1-N8 module; Pico: external 2 MB QSPI flash.
BOARDS: tuple[Board, ...] = (
    Board("Arduino Nano 33 BLE Sense", "nRF52840 (Cortex-M4F)", 256, 1024),
    Board("Raspberry Pi Pico", "RP2040 (Cortex-M0+)", 264, 2048),
    Board("ESP32-S3-DevKitC-1", "ESP32-S3 (Xtensa LX7)", 512, 8192),
    Board("STM32F746G-DISCO", "STM32F746 (Cortex-M7)", 320, 1024),
)


def tflm_manifests(folder: Path) -> list[dict]:
    """Manifests of the ``--format tflm`` files in ``folder``, in zoo order."""
    found = []
    for path in sorted(folder.glob("*_tflm.tflite.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("format") == "tflm" and "tflm" in data:
            found.append(data)
    return sorted(found, key=lambda m: MODEL_NAMES.index(m["model"]) if m["model"] in MODEL_NAMES else 99)


def refusals(folder: Path) -> dict[str, str]:
    """Model -> the refusal message of its ``--format tflm`` export, from the ``<model>.outcome.json``
    files ``make tflm-exports`` writes (``mnistkit export --json`` output)."""
    out = {}
    for path in sorted(folder.glob("*.outcome.json")):
        try:
            outcomes = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for o in outcomes if isinstance(outcomes, list) else []:
            if isinstance(o, dict) and not o.get("ok") and o.get("message"):
                out[path.name.split(".")[0]] = o["message"].split("; not written")[0]
    return out


def fits(board: Board, flash_bytes: int, arena_bytes: int) -> bool:
    """Whether a model fits a board: its array and its recommended arena each within HEADROOM."""
    return flash_bytes <= HEADROOM * board.flash_kb * 1024 and arena_bytes <= HEADROOM * board.ram_kb * 1024


def summary(manifests: list[dict]) -> list[dict]:
    """The figures the table shows, machine-readable (written to reports/tflm.json)."""
    rows = []
    for m in manifests:
        t, p = m["tflm"], m.get("parity", {})
        rows.append({
            "model": m["model"], "file": m["artifact"]["file"], "flash_bytes": t["flash_bytes"],
            "arena_min_bytes": t["arena_min_bytes"], "arena_recommended_bytes": t["arena_recommended_bytes"],
            "operators": t["operators"], "count": p.get("count"), "agreement": p.get("agreement"),
            "artifact_accuracy": p.get("artifact_accuracy"), "source_accuracy": p.get("source_accuracy"),
            "passed": p.get("passed"), "backend": p.get("backend"), "tflite_micro": t.get("tflite_micro"),
            "fits": [b.name for b in BOARDS if fits(b, t["flash_bytes"], t["arena_recommended_bytes"])],
        })
    return rows


def section(exports: Path, summary_path: Path | None = None) -> str:
    """The Markdown section (and, if ``summary_path``, its figures as JSON)."""
    rows = summary(tflm_manifests(exports))
    if summary_path is not None:
        from mnistkit.models.artifacts import write_json_atomic

        write_json_atomic(summary_path, rows)
    head = ["## Microcontrollers (TensorFlow Lite Micro)",
            "`mnistkit export SOURCE --format tflm` writes a batch-1 full-int8 .tflite, its C array and op resolver. "
            "Flash is the model array; the arena is the smallest tensor arena in which the TFLM Python interpreter "
            "(the reference kernels a board runs) prepares and runs the model, found by bisection on a 64-bit host, "
            "and the recommended size adds 10%. Agreement and accuracy: the file on the TFLM interpreter against the "
            "Keras source. A board fits a model when the array takes at most "
            f"{HEADROOM:.0%} of its flash and the recommended arena at most {HEADROOM:.0%} of its RAM (the rest is "
            "left for the TFLM library, the application and the stack).",
            "Recurrent models are exported as the TFLM variant of the full-int8 WHILE-loop graph of the TFLite "
            "export (export/recurrent_int8.py: int8 weights and LSTM hidden state, int16 gates and cell state), batch "
            "1: TFLM's BATCH_MATMUL refuses an int32 output and its GATHER has no int16, so each int8 x int8 product "
            "is an exact QUANTIZE of its operand to int16 and an int16 x int8 FULLY_CONNECTED, and a step's input "
            "row is a SLICE. TFLM also has a fused UNIDIRECTIONAL_SEQUENCE_LSTM kernel, which Keras 3 never emits."]
    if not rows:
        return "\n\n".join(head + ["No tflm exports found: run `make tflm-exports`."])
    table = ["| model | flash KB | arena KB (min / recommended) | TFLM agreement | TFLM accuracy (Keras) | operators | "
             + " | ".join(b.name for b in BOARDS) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(BOARDS)]
    for r in rows:
        marks = " | ".join("yes" if b.name in r["fits"] else "no" for b in BOARDS)
        table.append(
            f"| {r['model']} | {r['flash_bytes'] / 1024:.1f} | {r['arena_min_bytes'] / 1024:.1f} / "
            f"{r['arena_recommended_bytes'] / 1024:.0f} | {100 * r['agreement']:.2f}% ({r['count']:,} images) | "
            f"{100 * r['artifact_accuracy']:.2f}% ({100 * r['source_accuracy']:.2f}%) | {len(r['operators'])} | {marks} |")
    boards = "Boards: " + "; ".join(f"{b.name}: {b.chip}, {b.ram_kb} KB RAM, {b.flash_kb // 1024} MB flash"
                                    for b in BOARDS) + "."
    missing = [n for n in MODEL_NAMES if n not in {r["model"] for r in rows}]
    reasons = refusals(exports)
    note = ("Not delivered (refused by `mnistkit export --format tflm`, reason as it printed):\n"
            + "\n".join(f"- {n}: {reasons.get(n, 'no export found; run `make tflm-exports`')}" for n in missing)
            if missing else "")
    version = rows[0].get("tflite_micro")
    ops = "; ".join(f"{r['model']}: {', '.join(r['operators'])}" for r in rows)
    parts = [*head, "\n".join(table), boards,
             f"Operators per model ({'tflite-micro ' + version if version else ''}): {ops}.", note]
    return "\n\n".join(p for p in parts if p)
