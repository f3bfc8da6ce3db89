"""Did a change alter what ``mnistkit export`` writes? Compare two export folders file by file.

    python -m mnistkit.tools.scripts.compare_exports BEFORE_DIR AFTER_DIR [--parity reports/parity.json]

Per exported file: byte-identical (sha256; the export time and content digest inside the embedded
metadata block are masked, since they change with every run), or, for ONNX, equal up to tf2onnx's generated tensor
names (the same operators with the same attributes and the same weight values; tf2onnx numbers its
generated names per process, so two runs of the same code differ in those names and, by their
length, in size). Per manifest: equal apart from the export time, conversion time, sha256 and size.
With ``--parity``, the parity figures of AFTER_DIR's manifests against that summary
(``mnistkit report``'s reports/parity.json). Exits 1 when anything else differs.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import sys
from pathlib import Path

from mnistkit.runtime.errors import UsageError
from mnistkit.runtime.guard import EXIT_FAILURE, script_guarded
from mnistkit.runtime.manifest import manifest_path

PARITY_KEYS = ("count", "artifact_accuracy", "source_accuracy", "agreement", "max_delta_p", "passed")


def stable_sha256(path: Path) -> str:
    """sha256 of a file with the run-dependent bytes of its embedded metadata (the export time and
    the content digest, both fixed-length) masked; a plain sha256 when it has no such block."""
    from mnistkit.runtime import embedded

    data = bytearray(path.read_bytes())
    found = embedded.locate(bytes(data), path.name)
    if found is not None:
        _, at = found
        data[at:at + 64] = embedded.PLACEHOLDER
        key = data.find(b'"exported_at":"', data.find(embedded.PREFIX))
        if key >= 0:
            start = key + len(b'"exported_at":"')
            end = data.find(b'"', start)
            data[start:end] = b"0" * (end - start)
    return hashlib.sha256(data).hexdigest()


def onnx_fingerprint(path: Path) -> tuple[collections.Counter, collections.Counter]:
    """Operators (type + attributes) and weight values of an ONNX file, names left out."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(path).graph
    ops = collections.Counter((n.op_type, n.domain, tuple(sorted(a.SerializeToString() for a in n.attribute)))
                              for n in graph.node)
    weights = collections.Counter()
    for init in graph.initializer:
        value = numpy_helper.to_array(init)
        weights[(value.dtype.str, value.shape, value.tobytes())] += 1
    return ops, weights


def stable_manifest(path: Path) -> dict:
    """A manifest without what legitimately changes between runs: times, the file's sha256 and size."""
    data = json.loads(path.read_text())
    for key in ("exported_at", "conversion_seconds"):
        data.pop(key, None)
    for key in ("sha256", "size_bytes"):
        data.get("artifact", {}).pop(key, None)
    for key in ("size_bytes", "size_ratio_vs_float32"):
        data.get("parity", {}).pop(key, None)
    data["notes"] = [n for n in data.get("notes", []) if "x the size of the float32" not in n]
    return data


def compare(before: Path, after: Path) -> dict[str, list[str]]:
    """File names per verdict: identical, same-onnx (equal up to generated names), differ, missing."""
    verdicts: dict[str, list[str]] = {"identical": [], "same-onnx": [], "differ": [], "missing": []}
    artifacts = sorted(p.name for p in before.iterdir() if p.suffix in (".tflite", ".onnx"))
    for name in artifacts:
        a, b = before / name, after / name
        if not b.is_file() or not manifest_path(b).is_file():
            verdicts["missing"].append(name)
        elif stable_manifest(manifest_path(a)) != stable_manifest(manifest_path(b)):
            verdicts["differ"].append(name)
        elif stable_sha256(a) == stable_sha256(b):
            verdicts["identical"].append(name)
        elif a.suffix == ".onnx" and onnx_fingerprint(a) == onnx_fingerprint(b):
            verdicts["same-onnx"].append(name)
        else:
            verdicts["differ"].append(name)
    extra = sorted(p.name for p in after.iterdir() if p.suffix in (".tflite", ".onnx") and p.name not in artifacts)
    verdicts["missing"] += [f"{n} (only in {after})" for n in extra]
    return verdicts


def parity_mismatches(folder: Path, summary: Path) -> tuple[int, list[str]]:
    """(rows checked, rows whose parity figures differ) of ``summary`` against ``folder``'s manifests."""
    rows = json.loads(summary.read_text())
    bad = []
    for r in rows:
        name = f"{r['model']}_{r['mode']}.{r['format']}"
        try:
            m = json.loads(manifest_path(folder / name).read_text())
        except OSError:
            bad.append(f"{name}: no manifest")
            continue
        diff = [k for k in PARITY_KEYS if m["parity"].get(k) != r[k]]
        if m["source"]["sha256"] != r["source_sha256"]:
            diff.append("source sha256")
        if diff:
            bad.append(f"{name}: {', '.join(diff)}")
    return len(rows), bad


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m mnistkit.tools.scripts.compare_exports",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path, help="export folder written before the change")
    parser.add_argument("after", type=Path, help="export folder written after it")
    parser.add_argument("--parity", type=Path, help="a parity summary to check AFTER against (reports/parity.json)")
    args = parser.parse_args(argv)
    return script_guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    for folder in (args.before, args.after):
        if not folder.is_dir():
            raise UsageError(f"{folder} is not a folder; pass two export folders")
    verdicts = compare(args.before, args.after)
    total = sum(len(v) for v in verdicts.values())
    print(f"{total} exported files: {len(verdicts['identical'])} byte-identical, {len(verdicts['same-onnx'])} ONNX "
          f"equal up to generated names, {len(verdicts['differ'])} different, {len(verdicts['missing'])} missing")
    for name in verdicts["differ"] + verdicts["missing"]:
        print(f"  {name}")
    failed = bool(verdicts["differ"] or verdicts["missing"])
    if args.parity:
        checked, bad = parity_mismatches(args.after, args.parity)
        print(f"{checked - len(bad)}/{checked} rows of {args.parity} reproduced (accuracy, agreement, max|dp|, passed)")
        for line in bad:
            print(f"  {line}")
        failed = failed or bool(bad)
    return EXIT_FAILURE if failed else 0


if __name__ == "__main__":
    sys.exit(main())
