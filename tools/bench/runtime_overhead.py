"""Benchmark of the device runtime: prints figures, asserts nothing (not a timed test).

    python tools/bench/runtime_overhead.py                      # bundled default model, 10 cold starts
    python tools/bench/runtime_overhead.py --model exports/lstm_int8.tflite --runs 20 --with-tf

(a) cold start of ``python -m mnistkit.runtime <one image>`` (process start, imports, model load,
    preprocessing, classification, exit): median wall time and peak RSS over ``--runs`` runs, next to
    a bare ``python -c pass``, ``import mnistkit.runtime`` and (``--with-tf``) ``import tensorflow``.
    Goals: < 0.3 s and < 80 MiB.
(b) per-image overhead of ``Classifier.predict_proba`` on one image over a bare interpreter
    (set_tensor / invoke / get_tensor with input already in the model's dtype), median of
    ``--calls`` calls each, on the same model. Goal: < 20 %.
(c) two threads sharing one Classifier: an interpreter per thread vs one interpreter behind a lock.

Needs only the base install (numpy, Pillow, click, ai-edge-litert); onnxruntime for .onnx models.
For device-like cold-start figures run it with a non-editable base install (an editable install
adds a meta-path finder, ~15 ms per start):

    python -m venv /tmp/device && /tmp/device/bin/pip install .
    /tmp/device/bin/python tools/bench/runtime_overhead.py --skip b,c

On a shared machine wall times mostly measure waiting for a core; the CPU column does not.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mnistkit.runtime.cli import ASSETS, DEFAULT_MODEL
from mnistkit.runtime.errors import MnistkitError
from mnistkit.runtime.guard import script_guarded


# -- (a) cold start --------------------------------------------------------------------------------
def run_once(argv: list[str]) -> tuple[float, float, float]:
    """Run ``argv``; return (wall seconds, CPU seconds (user + system), peak RSS MiB).

    On a busy machine wall time mostly measures waiting for a core; CPU time does not.
    """
    timer = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    if timer:
        t0 = time.perf_counter()
        proc = subprocess.run([timer, "-v", *argv], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        rss = int(match.group(1)) / 1024 if match else float("nan")
        cpu = sum(float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr))
    else:  # ru_maxrss of children is the max over all waited children so far: an upper bound
        import resource

        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        rss = after.ru_maxrss / 1024
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0,):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise MnistkitError(f"{' '.join(argv)} failed (exit {proc.returncode}): {tail}")
    return wall, cpu, rss


def cold_start(model: Path, image: Path, runs: int, with_tf: bool) -> None:
    py = sys.executable
    cases = [
        ("python -c pass", [py, "-c", "pass"]),
        ("import mnistkit.runtime", [py, "-c", "import mnistkit.runtime"]),
        ("import numpy", [py, "-c", "import numpy"]),
        ("import deps (numpy click PIL litert)",
         [py, "-c", "import numpy, click, PIL.Image, PIL.PngImagePlugin, ai_edge_litert.interpreter"]),
        ("python -m mnistkit.runtime IMAGE", [py, "-m", "mnistkit.runtime", "--model", str(model), str(image)]),
    ]
    if with_tf:
        cases.append(("import tensorflow", [py, "-c", "import tensorflow"]))
    print(f"(a) cold start, {runs} runs each: median wall (min), median CPU user+sys, max peak RSS; "
          "goal < 0.3 s and < 80 MiB")
    for label, argv in cases:
        n = runs if label != "import tensorflow" else max(1, min(runs, 3))
        run_once(argv)  # warm the page cache
        results = [run_once(argv) for _ in range(n)]
        walls, cpus, rss = zip(*results)
        print(f"    {label:<34} wall {statistics.median(walls) * 1e3:6.0f} ms (min {min(walls) * 1e3:4.0f})"
              f"   cpu {statistics.median(cpus) * 1e3:5.0f} ms   {max(rss):6.1f} MiB")


# -- (b) per-image overhead ------------------------------------------------------------------------
def _median_ns(fn, calls: int) -> float:
    for _ in range(min(200, calls)):
        fn()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        t0 = clock()
        fn()
        samples.append(clock() - t0)
    return statistics.median(samples)


def overhead(model: Path, calls: int, rounds: int) -> None:
    from mnistkit.runtime import Classifier

    clf = Classifier.load(model, threads=1)
    x = np.random.default_rng(0).random((1, 28, 28), np.float32)
    print(f"(b) one-image latency, {model.name} on {clf.backend}, best of {rounds} interleaved rounds "
          f"of the median of {calls} calls; goal: Classifier overhead < 20 %")
    cases = {}
    if model.suffix == ".onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        name, out = sess.get_inputs()[0].name, sess.get_outputs()[0].name
        cases["bare session.run"] = lambda: sess.run([out], {name: x})[0]
    else:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = (OpResolverType.AUTO if clf.describe()["default_delegates"]
                    else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interp = Interpreter(model_path=str(model), num_threads=1, experimental_op_resolver_type=resolver)
        interp.allocate_tensors()
        inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
        i_idx, o_idx = inp["index"], outp["index"]
        xin = np.zeros(inp["shape"], inp["dtype"])  # already in the model's dtype: nothing to convert

        def bare():
            interp.set_tensor(i_idx, xin)
            interp.invoke()
            return interp.get_tensor(o_idx)

        cases["bare invoke (input pre-converted)"] = bare
        if inp["quantization"][0]:
            (si, zi), (so, zo) = inp["quantization"], outp["quantization"]
            lo, hi = np.iinfo(inp["dtype"]).min, np.iinfo(inp["dtype"]).max

            def bare_q():  # what a caller writes by hand for a quantized model
                q = np.clip(np.rint(x / si + zi), lo, hi).astype(inp["dtype"])
                interp.set_tensor(i_idx, q)
                interp.invoke()
                return (interp.get_tensor(o_idx).astype(np.float32) - zo) * so

            cases["bare invoke + hand-written (de)quantize"] = bare_q
    pixels = np.rint(x * 255).astype(np.uint8)
    cases["Classifier.predict_proba (float32)"] = lambda: clf.predict_proba(x)
    cases["Classifier.predict_proba (uint8 pixels)"] = lambda: clf.predict_proba(pixels)
    best = {k: float("inf") for k in cases}
    for _ in range(rounds):
        for label, fn in cases.items():
            best[label] = min(best[label], _median_ns(fn, calls))
    base = next(iter(best.values()))
    for label, ns in best.items():
        extra = "" if ns is base else f"   {ns / base - 1:+7.1%} ({(ns - base) / 1e3:+.2f} us)"
        print(f"    {label:<40} {ns / 1e3:8.2f} us{extra}")


# -- (c) threads -----------------------------------------------------------------------------------
def threads(model: Path, calls: int, rounds: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from mnistkit.runtime import Classifier

    x = np.random.default_rng(0).random((8, 28, 28), np.float32)
    print(f"(c) one Classifier ({model.name}) shared by 2 threads, {calls} single-image calls per "
          f"thread, best of {rounds} interleaved rounds: wall time per call")
    clfs = {c: Classifier.load(model, threads=1, concurrency=c) for c in ("per-thread", "lock")}

    def work(clf):
        for i in range(calls):
            clf.predict_proba(x[i % 8:i % 8 + 1])

    best = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for clf in clfs.values():  # warm up: each pool thread makes its interpreter now
            list(pool.map(work, [clf, clf]))
        for _ in range(rounds):
            for name, clf in clfs.items():
                for n in (1, 2):
                    t0 = time.perf_counter()
                    list(pool.map(work, [clf] * n))
                    per = (time.perf_counter() - t0) / (calls * n) * 1e6
                    best[name, n] = min(best.get((name, n), float("inf")), per)
    for (name, n), per in best.items():
        print(f"    {name:<10} {n} thread(s): {per:8.2f} us/call")


def _sample_image(tmp: Path) -> Path:
    samples = ASSETS / "samples"
    found = sorted(p for p in samples.glob("*.png")) if samples.is_dir() else []
    if found:
        return found[0]
    from PIL import Image

    img = np.zeros((28, 28), np.uint8)
    img[6:22, 13:16] = 255  # a "1"
    path = tmp / "one.png"
    Image.fromarray(img).save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and print every figure; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, action="append",
                    help="model(s) to measure (default: the bundled model)")
    ap.add_argument("--image", type=Path, help="image for the cold start (default: a bundled sample)")
    ap.add_argument("--runs", type=int, default=10, help="cold-start runs (default 10)")
    ap.add_argument("--calls", type=int, default=3000, help="calls per latency round (default 3000)")
    ap.add_argument("--rounds", type=int, default=5, help="latency rounds; the best is kept (default 5)")
    ap.add_argument("--with-tf", action="store_true", help="also time `import tensorflow`")
    ap.add_argument("--skip", default="", help="comma list of sections to skip: a,b,c")
    args = ap.parse_args(argv)
    return script_guarded(lambda: _measure(args))


def _measure(args: argparse.Namespace) -> None:
    models = args.model or [DEFAULT_MODEL]
    skip = set(args.skip.split(","))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        image = args.image or _sample_image(Path(tmp))
        if "a" not in skip:
            cold_start(models[0], image, args.runs, args.with_tf)
    for model in models:
        if "b" not in skip:
            overhead(model, args.calls, args.rounds)
        if "c" not in skip:
            threads(model, args.calls // 2, args.rounds)


if __name__ == "__main__":
    sys.exit(main())
