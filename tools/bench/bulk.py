"""Throughput and memory of ``mnistkit classify`` on a large folder: --jobs 1, --jobs N, --engine ray.

    python -m mnistkit.tools.bench.bulk FOLDER [--small SUBFOLDER] [--runs jobs1,process2,thread2,ray,jobs1_numpy]
                                        [--rounds 3] [--json] [--markdown reports/bulk.md]

Each run is a fresh ``mnistkit classify -r FOLDER --output tmp.jsonl --json`` process. Reported per
run: images/s as the command measures it (model loaded, first image to last record), wall time of
the whole process (start-up included), and the peak resident memory of the process tree (the main
process plus its workers, sampled every 0.1 s with psutil). ``--small`` runs ``jobs1`` on a
subfolder too, to compare peak memory at two input sizes (flat memory: the same peak). Rounds
interleave the configurations so that a slow spell of a shared machine hits all of them.
Every run's records are compared with the ``jobs1`` run's: labels must be identical.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = {
    "jobs1": ["--jobs", "1"],
    "process2": ["--jobs", "2", "--executor", "process"],
    "thread2": ["--jobs", "2", "--executor", "thread"],
    "ray": ["--engine", "ray"],
}
NUMPY = "_numpy"
"""A run name ending in this runs with MNISTKIT_PREPROCESS=numpy (e.g. ``jobs1_numpy``): the numpy
kernels, when numba (``mnistkit[fast]``) would otherwise be used."""


def run_args(name: str) -> tuple[list[str], dict[str, str]]:
    """Command-line arguments and extra environment of a run name; KeyError for an unknown one."""
    if name.endswith(NUMPY):
        return RUNS[name[: -len(NUMPY)]], {"MNISTKIT_PREPROCESS": "numpy"}
    return RUNS[name], {}


def run_once(folder: Path, args: list[str], out: Path, env: dict[str, str] | None = None) -> dict:
    """Run one classify process; return its summary, wall time and tree RSS (MiB).

    RSS is sampled every 0.1 s together with the number of records written so far, so besides the
    peak it gives the RSS while the first 2,000 images were written and while the last 10% were:
    flat memory means those two agree, however many images there are.
    """
    import psutil

    cmd = [sys.executable, "-m", "mnistkit.runtime", "-r", str(folder), "--output", str(out), "--json", *args]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    samples: list[tuple[int, int]] = []  # (records written, tree RSS bytes)
    ps = psutil.Process(proc.pid)
    records, offset = 0, 0
    while proc.poll() is None:
        try:
            tree = [ps, *ps.children(recursive=True)]
            rss = sum(p.memory_info().rss for p in tree if p.is_running())
        except psutil.Error:
            rss = 0
        if out.exists():
            with open(out, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            records, offset = records + chunk.count(b"\n"), offset + len(chunk)
        if rss:
            samples.append((records, rss))
        time.sleep(0.1)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {stderr[-500:]}")
    summary = json.loads(stdout)["summary"]
    total = summary["images"]

    def rss_while(lo: float, hi: float) -> float | None:
        got = [r for n, r in samples if lo < n <= hi]
        return round(max(got) / 2**20, 1) if got else None

    return {"images": total, "failed": summary["failed"], "kernels": summary.get("preprocess_kernels", "-"),
            "images_per_s": summary.get("images_per_s"), "wall_s": round(wall, 2),
            "peak_rss_mib": round(max((r for _, r in samples), default=0) / 2**20, 1),
            "rss_first_2000_mib": rss_while(0, 2000), "rss_last_10pct_mib": rss_while(0.9 * total, total)}


def labels(path: Path) -> dict[str, int]:
    """source -> label (-1 for a failed record) of an output file."""
    out = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            out[r["source"]] = r.get("label", -1)
    return out


def to_markdown(doc: dict) -> str:
    """The median run of each configuration as a Markdown table, with how it was measured."""
    load = doc.get("load_before")
    lines = [f"Measured by `python -m mnistkit.tools.bench.bulk FOLDER --small SUBFOLDER` on {doc['cpus']} CPU cores "
             f"({doc['rounds']} interleaved round(s), the median of each): images/s as `mnistkit classify` reports "
             "it (model loaded, first image to last record), wall time of the whole process, peak RSS of the "
             "process tree sampled every 0.1 s (main process + workers; for Ray, the local instance's processes "
             "too)" + (f"; 1-minute load average before the runs: {load:.2f}." if load is not None else "."), "",
             "| run | preprocessing | images | images/s | vs --jobs 1 (same preprocessing) | wall s | peak RSS MiB | "
             "RSS: first 2,000 / last 10% | labels = --jobs 1 |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    ratio = speedups(doc["median"])
    for name, b in doc["median"].items():
        same = b.get("labels_identical_to_jobs1")
        lines.append(f"| {name} | {b.get('kernels', '-')} | {b['images']:,} | {b['images_per_s']:.1f} | "
                     f"{ratio.get(name, float('nan')):.2f}x | {b['wall_s']:.1f} | "
                     f"{b['peak_rss_mib']:.1f} | {_mib(b.get('rss_first_2000_mib'))} / "
                     f"{_mib(b.get('rss_last_10pct_mib'))} | {'-' if same is None else 'yes' if same else 'NO'} |")
    return "\n".join(lines) + "\n"


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def speedups(median: dict[str, dict]) -> dict[str, float]:
    """images/s of each run over its ``jobs1``: ``jobs1_numpy`` for the ``*_numpy`` runs, else ``jobs1``."""
    out = {}
    for name, b in median.items():
        base = median.get("jobs1" + (NUMPY if name.endswith(NUMPY) else ""), {}).get("images_per_s")
        if base and b.get("images_per_s"):
            out[name] = round(b["images_per_s"] / base, 2)
    return out


def median_run(runs: list[dict]) -> dict:
    """The run with the median images/s (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda r: r["images_per_s"] or 0)
    return ordered[(len(ordered) - 1) // 2]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--small", type=Path, default=None, help="a subfolder, for peak memory at a smaller size")
    ap.add_argument("--runs", default="jobs1,process2,thread2,ray")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the table as Markdown (reports/bulk.md)")
    ap.add_argument("--from-json", type=Path, default=None, help="re-render a saved --json result instead of measuring")
    args = ap.parse_args(argv)
    if args.from_json is not None:
        doc = json.loads(args.from_json.read_text())
        if args.markdown:
            args.markdown.write_text(to_markdown(doc))
        print(to_markdown(doc))
        return 0
    names = [n for n in args.runs.split(",") if n]
    unknown = [n for n in names if n.removesuffix(NUMPY) not in RUNS]
    if unknown:
        print(f"error: unknown run(s) {unknown}; choose from {', '.join(RUNS)}, each also with {NUMPY}",
              file=sys.stderr)
        return 2
    results: dict[str, list[dict]] = {}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        reference = None
        for r in range(args.rounds):
            for name in names:
                out = Path(tmp) / f"{name}-{r}.jsonl"
                cli_args, env = run_args(name)
                res = run_once(args.folder, cli_args, out, env)
                got = labels(out)
                if reference is None and name == "jobs1":
                    reference = got
                res["labels_identical_to_jobs1"] = None if reference is None else got == reference
                results.setdefault(name, []).append(res)
                print(f"round {r + 1} {name:8s} {res}", file=sys.stderr, flush=True)
                out.unlink()
            if args.small is not None:
                out = Path(tmp) / f"small-{r}.jsonl"
                results.setdefault("jobs1_small", []).append(run_once(args.small, RUNS["jobs1"], out))
                print(f"round {r + 1} small    {results['jobs1_small'][-1]}", file=sys.stderr, flush=True)
                out.unlink()
    median = {name: median_run(rs) for name, rs in results.items()}
    doc = {"folder": str(args.folder), "cpus": os.cpu_count(), "rounds": args.rounds, "load_before": load_before,
           "median": median, "speedup_vs_jobs1": speedups(median), "runs": results}
    if args.markdown:
        args.markdown.write_text(to_markdown(doc))
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"{'run':12s} {'images':>7s} {'images/s':>9s} {'vs jobs1':>8s} {'wall s':>7s} {'peak RSS MiB':>12s}")
        for name, b in median.items():
            print(f"{name:12s} {b['images']:7d} {b['images_per_s']:9.1f} "
                  f"{doc['speedup_vs_jobs1'].get(name, float('nan')):8.2f} {b['wall_s']:7.1f} {b['peak_rss_mib']:12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
