"""Soak and concurrency run of the device runtime (a script that prints figures, not a timed test).

    python -m mnistkit.tools.bench.soak                                   # the issue's full run
    python -m mnistkit.tools.bench.soak --calls 100000 --photos 20000 --json reports/soak.json

1. ``--calls`` single-image ``predict_proba`` calls (MNIST test digits, uint8) in one process, RSS
   sampled every ``--every`` calls; growth is the last sample minus the first (taken after a warm-up).
2. ``--photos`` ``classify(path)`` calls on the bundled sample photos (decode + preprocess + model),
   RSS sampled the same way.
3. ``--threads`` threads sharing one ``Classifier`` classify the 10,000 test digits (one image per
   call, then batches of 32) and their answers are compared with a sequential run: mismatching
   probabilities and labels are counted (goal 0), for both concurrency modes.
Goal: RSS growth < 5 MB in 1 and 2.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import click
import numpy as np


def rss_mb() -> float:
    """Current resident set size of this process in MB (Linux /proc; else peak RSS)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _loop(n: int, every: int, call, label: str) -> dict:
    """Run ``call(i)`` n times, sampling RSS; the first sample is taken after 1/20 of the calls."""
    warm = max(1, min(n // 20, 10 * every))
    for i in range(warm):
        call(i)
    samples = [(0, rss_mb())]
    t0 = time.perf_counter()
    for i in range(n):
        call(i)
        if (i + 1) % every == 0:
            samples.append((i + 1, rss_mb()))
            if (i + 1) % (every * 10) == 0:
                click.echo(f"  {label}: {i + 1:,}/{n:,} calls, RSS {samples[-1][1]:.1f} MB", err=True)
    seconds = time.perf_counter() - t0
    values = [s[1] for s in samples]
    return {"calls": n, "seconds": round(seconds, 1), "us_per_call": round(seconds / max(n, 1) * 1e6, 1),
            "rss_first_mb": round(values[0], 2), "rss_last_mb": round(values[-1], 2),
            "rss_max_mb": round(max(values), 2), "growth_mb": round(values[-1] - values[0], 2),
            "samples": [[i, round(v, 2)] for i, v in samples[:: max(1, len(samples) // 50)]]}


def _concurrency(model: Path, x: np.ndarray, threads: int, mode: str) -> dict:
    from mnistkit.runtime import Classifier

    clf = Classifier.load(model, concurrency=mode)
    ref_one = np.concatenate([clf.predict_proba(x[i:i + 1]) for i in range(len(x))])
    ref_batch = np.concatenate([clf.predict_proba(x[i:i + 32]) for i in range(0, len(x), 32)])
    out_one = np.full_like(ref_one, np.nan)
    out_batch = np.full_like(ref_batch, np.nan)
    errors: list[str] = []

    def work(k: int) -> None:
        try:
            for i in range(k, len(x), threads):  # interleaved: every thread runs all the time
                out_one[i] = clf.predict_proba(x[i:i + 1])[0]
            for b in range(k * 32, len(x), threads * 32):
                out_batch[b:b + 32] = clf.predict_proba(x[b:b + 32])
        except Exception as exc:  # noqa: BLE001 - counted and reported
            errors.append(f"{type(exc).__name__}: {exc}")

    t0 = time.perf_counter()
    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    seconds = time.perf_counter() - t0
    prob_mismatch = int((~np.all(out_one == ref_one, axis=1)).sum() + (~np.all(out_batch == ref_batch, axis=1)).sum())
    label_mismatch = int((out_one.argmax(1) != ref_one.argmax(1)).sum() + (out_batch.argmax(1) != ref_batch.argmax(1)).sum())
    return {"mode": mode, "threads": threads, "images": len(x), "calls_compared": 2 * len(x),
            "probability_mismatches": prob_mismatch, "label_mismatches": label_mismatch,
            "errors": errors[:5], "seconds": round(seconds, 1)}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Model file (default: the bundled model).")
@click.option("--calls", default=1_000_000, show_default=True, help="Single-image predict_proba calls.")
@click.option("--photos", default=200_000, show_default=True, help="classify(path) calls on the sample photos.")
@click.option("--threads", default=8, show_default=True, help="Threads sharing one Classifier.")
@click.option("--every", default=10_000, show_default=True, help="Sample RSS every this many calls.")
@click.option("--data", "data_dir", default=None, help="MNIST folder (default: $MNISTKIT_DATA).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the figures here (atomically), e.g. reports/soak.json for the report.")
def main(model: Path | None, calls: int, photos: int, threads: int, every: int, data_dir: str | None,
         json_out: Path | None) -> None:
    """Soak the runtime (RSS over many calls) and compare threads with a sequential run."""
    from mnistkit.models.data import load_mnist
    from mnistkit.runtime import Classifier
    from mnistkit.runtime.cli import ASSETS, DEFAULT_MODEL, quiet_native_stderr

    model = model or DEFAULT_MODEL
    x = load_mnist(data_dir or os.environ.get("MNISTKIT_DATA")).x_test
    with quiet_native_stderr():
        clf = Classifier.load(model)
    photos_list = sorted((ASSETS / "samples").iterdir())
    out: dict = {"model": model.name, "backend": clf.backend, "cpu_count": os.cpu_count(),
                 "note": "machine shared with other work: times are contended"}
    click.echo(f"soak: {calls:,} single-image calls on {model.name} ({clf.backend})", err=True)
    out["single_image"] = _loop(calls, every, lambda i: clf.predict_proba(x[i % 10000][None]), "single")
    click.echo(f"soak: {photos:,} photo classify() calls", err=True)
    out["photos"] = _loop(photos, max(1, every // 10), lambda i: clf.classify(photos_list[i % len(photos_list)]),
                          "photos")
    click.echo(f"concurrency: {threads} threads vs sequential on {len(x):,} images", err=True)
    out["concurrency"] = [_concurrency(model, x, threads, mode) for mode in ("per-thread", "lock")]
    for key in ("single_image", "photos"):
        r = out[key]
        click.echo(f"{key}: {r['calls']:,} calls, {r['us_per_call']} us/call, RSS {r['rss_first_mb']} -> "
                   f"{r['rss_last_mb']} MB (growth {r['growth_mb']:+.2f} MB, max {r['rss_max_mb']} MB)")
    for c in out["concurrency"]:
        click.echo(f"concurrency ({c['mode']}): {c['threads']} threads, {c['calls_compared']:,} answers compared, "
                   f"{c['probability_mismatches']} probability / {c['label_mismatches']} label mismatches, "
                   f"{len(c['errors'])} errors")
    if json_out:
        from mnistkit.models.artifacts import write_json_atomic

        write_json_atomic(json_out, out)
        click.echo(f"figures written to {json_out}")


if __name__ == "__main__":
    main()
