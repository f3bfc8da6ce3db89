"""``python -m mnistkit.tools.fuzz``: fuzz the device runtime and report counts per outcome class.

    python -m mnistkit.tools.fuzz --models 2000 --images 2000          # the CI share (~1-2 min)
    python -m mnistkit.tools.fuzz --models 20000 --images 20000 --json reports/fuzz.json
    python -m mnistkit.tools.fuzz --pi --models 300 --images 0         # model loader on the emulated Pi

The loader runs in-process (``MNISTKIT_PROBE=0``), so a native crash shows as "signal"; every such
case is then rerun with ``Classifier.load``'s child-process probe on (what a user gets by default
for an unverifiable file). Exit code 1 if a failure remains (traceback, multiline message, NaN,
memory over the cap, hang, or a crash the probe does not turn into a ModelError); failing cases are
listed with kind, base file and seed, and ``--repro`` writes such a mutant to a file.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import click

from mnistkit.tools.fuzz import harness


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--models", default=2000, show_default=True, help="Mutated .tflite/.onnx files.")
@click.option("--images", default=2000, show_default=True, help="Mutated image files.")
@click.option("--seed", default=0, show_default=True, help="First seed (case i uses seed + i).")
@click.option("--timeout", "timeout_s", default=30.0, show_default=True, help="Seconds per case before it is a hang.")
@click.option("--rss-cap", default=512.0, show_default=True, help="Peak resident MB per child above which a case fails.")
@click.option("--pi", is_flag=True, help="Run the cases on the emulated Raspberry Pi (make pi-setup first).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the figures here (atomically), e.g. reports/fuzz.json for the report.")
@click.option("--repro", nargs=3, type=(str, str, int), default=None, metavar="KIND BASE SEED",
              help="Write one mutant (kind tflite/onnx/image, base file, seed) to ./fuzz-case.bin and stop.")
def main(models: int, images: int, seed: int, timeout_s: float, rss_cap: float, pi: bool,
         json_out: Path | None, repro) -> None:
    """Fuzz the runtime with seeded mutants of model files and images, in child processes."""
    if repro:
        from mnistkit.tools.fuzz.mutators import mutant

        kind, base, s = repro
        Path("fuzz-case.bin").write_bytes(mutant(kind, Path(base).read_bytes(), s))
        click.echo("wrote fuzz-case.bin")
        return
    bases = harness.default_bases()
    cases = (harness.make_cases("model", bases["tflite"] + bases["onnx"], models, seed)
             + harness.make_cases("image", bases["image"], images, seed))
    python, env, tmp = None, None, None
    if pi:
        python, env, tmp = _pi_python()
        timeout_s = max(timeout_s, 300.0)
        rss_cap = max(rss_cap, 1024.0)  # the emulator's RSS (qemu + its translation cache) counts too

    def progress(done: int, total: int) -> None:
        if done % 250 == 0 or done == total:
            click.echo(f"  {done}/{total} cases", err=True)

    click.echo(f"fuzzing {len(cases)} cases ({models} model, {images} image mutants)"
               + (" on the emulated Pi" if pi else ""), err=True)
    try:
        result = harness.run(cases, timeout_s=timeout_s, rss_cap_mb=rss_cap, python=python, env=env,
                             progress=progress, as_cap_mb=8192 if pi else 4096,
                             per_child=100 if pi else None)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    crashed = result.crashed
    recheck = None
    if crashed:  # the in-process loader died: would Classifier.load's child-process probe catch it?
        click.echo(f"rechecking {len(crashed)} crashed case(s) with the load probe on", err=True)
        probe_env = {**(env or os.environ), "MNISTKIT_PROBE": "1"}
        again = harness.run(crashed, timeout_s=timeout_s * 4, rss_cap_mb=rss_cap, python=python,
                            env=probe_env, as_cap_mb=8192 if pi else 4096,
                            per_child=100 if pi else None).to_dict()
        recheck = {"cases": len(crashed), "counts": again["counts"], "failures": again["failures"]}
    data = result.to_dict() | {"platform": "emulated Pi (aarch64, qemu)" if pi else "host",
                               "models": models, "images": images, "seed": seed,
                               "timeout_s": timeout_s, "rss_cap_mb": rss_cap,
                               "signal_recheck_with_probe": recheck}
    # A crash the probe turns into a typed error is what a user gets from Classifier.load.
    unresolved = data["failures"] - (len(crashed) - recheck["failures"] if recheck else 0)
    data["unresolved_failures"] = unresolved
    for kind, counts in data["counts"].items():
        click.echo(f"{kind:<7} " + "  ".join(f"{k} {v}" for k, v in counts.items()))
    click.echo(f"{data['cases']} cases in {data['seconds']:.0f} s, {data['child_processes']} child process(es), "
               f"peak RSS of a child {data['peak_rss_mb']:.0f} MB, {data['failures']} failure(s)")
    for ex in data["examples"]:
        click.echo(f"  {ex['outcome']}: {ex['kind']} {ex['base']} seed {ex['seed']}: {ex['detail']}")
    if recheck:
        click.echo(f"crashed cases rechecked with Classifier.load's child-process probe: {recheck['counts']}")
    click.echo(f"unresolved failures: {unresolved}")
    if json_out:
        _write_json(json_out, data, pi)
        click.echo(f"figures written to {json_out}")
    sys.exit(1 if unresolved else 0)


def _write_json(path: Path, data: dict, pi: bool) -> None:
    """Keep host and Pi figures side by side in one file."""
    from mnistkit.models.artifacts import write_json_atomic

    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        doc = {}
    doc["pi" if pi else "host"] = data
    write_json_atomic(path, doc)


def _pi_python():
    """The emulated aarch64 Python with this checkout's runtime and fuzz modules on its path."""
    from mnistkit.tools.pi import emu
    from mnistkit.tools.pi.common import cache_dir

    root = harness.ROOT
    tmp = Path(tempfile.mkdtemp(prefix="mnistkit-fuzz-pi-"))
    pkg = tmp / "mnistkit"
    ignore = shutil.ignore_patterns("__pycache__", "samples")
    shutil.copytree(root / "runtime", pkg / "runtime", ignore=ignore)
    (pkg / "tools").mkdir()
    shutil.copy(root / "tools" / "__init__.py", pkg / "tools" / "__init__.py")
    shutil.copytree(root / "tools" / "fuzz", pkg / "tools" / "fuzz", ignore=ignore)
    shutil.copytree(root / "runtime" / "assets" / "samples", pkg / "runtime" / "assets" / "samples")
    argv, env = emu.command([], [tmp, cache_dir() / "site"])
    return argv, env, tmp


if __name__ == "__main__":
    main()
