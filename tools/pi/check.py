"""``make pi-check``: the device runtime on an emulated Raspberry Pi must classify exactly as on x86.

For each artifact, ``python -m mnistkit.runtime IMAGES --model ARTIFACT --backend B --json`` runs twice
on the same image files: on this machine and on the emulated Pi (aarch64 CPython 3.11, Debian
bookworm, Cortex-A72, mnistkit installed from its wheel with aarch64 wheels of its dependencies).
Images: the bundled samples (``mnistkit/runtime/assets/samples`` as installed from the wheel) and
the first N MNIST test images written as PNG files. Pass: same images classified, labels identical,
probabilities within 1e-5 (float output) or 3 output quantization steps (integer output, scale read
from the interpreter), exit code 0, and ``tensorflow`` absent from ``sys.modules`` after classifying.
Timings under emulation say nothing about a real Pi: only correctness is reported.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnistkit.runtime.cli import DEFAULT_MODEL, quiet_native_stderr
from mnistkit.tools.pi import sysroot, wheels
from mnistkit.tools.pi.common import Stamp, StepError, cache_dir, checkout_root, log
from mnistkit.tools.pi.compare import artifact_mode, compare_runs, tolerance
from mnistkit.tools.pi.inputs import find_artifacts, mnist_images
from mnistkit.tools.pi.targets import Target, host, probe_cli

BACKEND = {".tflite": "litert", ".onnx": "onnxruntime"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".webp"}


@dataclass
class ArtifactResult:
    """The check of one artifact."""

    artifact: str
    backend: str
    images: int = 0
    label_mismatches: int = 0
    max_abs_diff: float = 0.0
    atol: float = 0.0
    kind: str = "float"
    tensorflow_imported: bool = False
    problems: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True if nothing differed."""
        return not self.problems

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {**self.__dict__, "ok": self.ok}


def mnist_pngs(count: int) -> Path:
    """Write the first ``count`` MNIST test images as 28x28 grayscale PNGs (cached); return the folder."""
    folder = cache_dir() / f"mnist-png-{count}"
    stamp = Stamp(f"mnist-png-{count}", {"count": count})
    if stamp.done() and folder.is_dir():
        return folder
    from PIL import Image

    x, y = mnist_images(count)
    folder.mkdir(parents=True, exist_ok=True)
    for i, (img, label) in enumerate(zip(x, y)):
        Image.fromarray(np.rint(img * 255).astype(np.uint8), mode="L").save(folder / f"test{i:05d}_label{label}.png")
    stamp.mark()
    return folder


def sample_folder(site_mnistkit: Path) -> Path | None:
    """The bundled sample images as installed from the wheel (None if the wheel ships none)."""
    folder = site_mnistkit / "mnistkit" / "runtime" / "assets" / "samples"
    if folder.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
        return folder
    return None


def _by_source(result: dict, who: str, problems: list[str]) -> dict[str, dict]:
    if result["exit"] != 0:
        problems.append(f"{who}: exit {result['exit']}")
    try:
        doc = json.loads(result["stdout"])
    except ValueError:
        problems.append(f"{who}: output is not JSON ({result['stdout'][:80]!r})")
        return {}
    out = {}
    for rec in doc.get("results", []):
        out[Path(rec["source"]).name if "source" in rec else "?"] = rec
        if "error" in rec:
            problems.append(f"{who}: {rec['error']}")
    return out


def check_artifact(artifact: Path, folders: list[Path], x86: Target, arm: Target,
                   steps: float = 3) -> ArtifactResult:
    """Run one artifact on both machines and compare what they print."""
    from mnistkit.runtime import Classifier

    backend = BACKEND[artifact.suffix]
    res = ArtifactResult(str(artifact), backend)
    with quiet_native_stderr():  # LiteRT prints an INFO line when XNNPACK starts
        res.kind, res.atol = tolerance(Classifier.load(artifact, backend=backend).describe(), artifact_mode(artifact),
                                       artifact.suffix[1:], steps)
    args = [*map(str, folders), "--model", str(artifact), "--backend", backend, "--json", "--top-k", "1"]
    runs = {}
    for name, target in (("x86_64", x86), ("aarch64", arm)):
        runs[name], res.seconds[name] = probe_cli(target, args)
        res.seconds[name] = round(res.seconds[name], 1)
    res.tensorflow_imported = bool(runs["aarch64"]["tensorflow_imported"])
    if res.tensorflow_imported:
        res.problems.append("aarch64: tensorflow was imported")
    if runs["x86_64"]["tensorflow_imported"]:
        res.problems.append("x86_64: tensorflow was imported")
    if runs["aarch64"]["env"].get("machine") != "aarch64":
        res.problems.append(f"the emulated run reports machine {runs['aarch64']['env'].get('machine')!r}")
    ref = _by_source(runs["x86_64"], "x86_64", res.problems)
    got = _by_source(runs["aarch64"], "aarch64", res.problems)
    if set(ref) != set(got):
        res.problems.append(f"different images classified ({len(ref)} on x86_64, {len(got)} on aarch64)")
    common = sorted(k for k in set(ref) & set(got) if "probabilities" in ref[k] and "probabilities" in got[k])
    res.images = len(common)
    if not common:
        res.problems.append("no image classified on both machines")
        return res
    par = compare_runs(np.array([ref[k]["probabilities"] for k in common]),
                  np.array([got[k]["probabilities"] for k in common]), res.kind, res.atol)
    labels_differ = sum(ref[k]["label"] != got[k]["label"] for k in common)
    res.label_mismatches = max(par.label_mismatches, labels_differ)
    res.max_abs_diff = par.max_abs_diff
    if res.label_mismatches:
        res.problems.append(f"{res.label_mismatches} label(s) differ")
    if par.max_abs_diff > par.atol:
        res.problems.append(f"probabilities differ by {par.max_abs_diff:.2e} > {par.atol:.0e}")
    return res


def run_check(artifacts: list[Path], mnist: int = 300, install_qemu: bool = False, cpu: str = "cortex-a72",
              steps: float = 3) -> dict:
    """Set up the emulated Pi (cached) and check every artifact; return a JSON-ready summary.

    Args:
        artifacts: model files to check.
        mnist: how many MNIST test images to add to the bundled samples (0: samples only).
        install_qemu: install qemu-user-static with apt-get if it is missing.
        cpu: qemu CPU model for the emulated Pi.
        steps: quantization steps allowed for quantized models (the brief's rule: 3).

    Raises:
        StepError: a setup step failed, or there is no image to classify.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    root = sysroot.build(install_qemu=install_qemu)
    timings["sysroot"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    sites = wheels.install_all(tflrt=False)
    timings["wheels"] = round(time.perf_counter() - t0, 1)
    folders = []
    samples = sample_folder(sites["mnistkit"])
    if samples is None:
        log("note: the mnistkit wheel ships no sample images (runtime/assets/samples)")
    else:
        folders.append(samples)
    if mnist:
        folders.append(mnist_pngs(mnist))
    if not folders:
        raise StepError("images", "no bundled sample images in the wheel and --mnist 0: nothing to classify")
    x86 = host()
    arm = Target("aarch64 (emulated)", "aarch64", None, (sites["mnistkit"], sites["base"]), cpu=cpu)
    results = []
    t0 = time.perf_counter()
    for art in artifacts:
        log(f"check: {art.name}")
        results.append(check_artifact(art, folders, x86, arm, steps))
    timings["check"] = round(time.perf_counter() - t0, 1)
    resolved = wheels.resolved(cache_dir() / "resolve-base")
    return {
        "ok": all(r.ok for r in results),
        "sysroot": str(root),
        "cpu": cpu,
        "images": {"samples": str(samples) if samples else None, "mnist_png": mnist,
                   "sample_count": sum(1 for p in samples.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                   if samples else 0},
        "aarch64_base_install": [f"{r['name']} {r['version']} ({r['file']})" for r in resolved],
        "artifacts": [r.to_dict() for r in results],
        "seconds": timings,
    }


def table(summary: dict) -> str:
    """A short plain-text table of the check."""
    rows = [("artifact", "backend", "images", "labels", "max |dp|", "tolerance", "TF imported", "result")]
    for r in summary["artifacts"]:
        rows.append((Path(r["artifact"]).name, r["backend"], str(r["images"]),
                     f"{r['images'] - r['label_mismatches']}/{r['images']} same", f"{r['max_abs_diff']:.1e}",
                     f"{r['atol']:.0e} ({r['kind']})", "yes" if r["tensorflow_imported"] else "no",
                     "ok" if r["ok"] else "MISMATCH: " + "; ".join(r["problems"])[:120]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1] for row in rows]
    base = ", ".join(" ".join(item.split()[:2]) for item in summary["aarch64_base_install"])
    lines += ["", f"emulated Pi: aarch64 CPython 3.11 (Debian bookworm), qemu CPU {summary['cpu']}; "
                  f"base install resolved from aarch64 wheels: {base}, ...",
              f"images: {summary['images']['sample_count']} bundled samples + {summary['images']['mnist_png']} MNIST "
              "test images (PNG files), classified by `python -m mnistkit.runtime --json` on both machines",
              "correctness only: timings under emulation say nothing about a real Pi's speed",
              "result: " + ("PASS" if summary["ok"] else "FAIL")]
    return "\n".join(lines)


def default_artifacts(all_exports: bool, paths: list[Path]) -> list[Path]:
    """Resolve what to check: files, folders (every artifact), ``--all`` (exports/pretrained), or the default model."""
    out: list[Path] = []
    for p in paths:
        out += find_artifacts(p) if p.is_dir() else [p]
    if all_exports:
        out += find_artifacts(checkout_root() / "exports" / "pretrained")
    if not out:
        out = [DEFAULT_MODEL]
    for p in out:
        if not p.is_file():
            raise StepError("artifacts", f"{p} does not exist")
        if p.suffix not in BACKEND:
            raise StepError("artifacts", f"{p} is neither .tflite nor .onnx")
    return out
