"""Load script for ``mnistkit serve`` (a measurement, not a test): many clients, real photos, loopback only.

    python -m mnistkit.tools.serve.load [--clients 16] [--requests 2000] [--max-seconds 900]

Starts ``mnistkit serve`` (default model, default options) on a free port of 127.0.0.1, and runs
``--clients`` concurrent clients, each sending ``--requests`` requests (one photo each, multipart,
keep-alive) one after the other. Photos: a photo-like labelled set made by ``mnistkit.tools.scripts.make_samples`` (needs
MNIST and fonts), else the bundled samples. Prints and writes (``--out``, default
``reports/serve_load.{json,md,png}``): requests/s, latency p50/p90/p99/max as the clients saw it,
errors (transport failures such as dropped connections, and non-200 answers), requests not sent
because the time cap came first, wrong answers (label vs the file's true digit),
the server's RSS every second, and the server's start-up time (spawn to the first /healthz answer,
median of 5). Bounded in count and in time (``--max-seconds``: the clients stop when it is reached).
The clients run on the same machine as the server and share its cores: say so with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from mnistkit.tools.serve import launch


def photo_set(count: int, folder: Path) -> list[tuple[str, bytes, int]]:
    """(file name, bytes, true digit) of ``count`` photo-like digits, or of the bundled samples."""
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "mnistkit.tools.scripts.make_samples", str(folder), "--count",
                           str(count), "--seed", "11"], capture_output=True, text=True, timeout=600)
    files = sorted(folder.iterdir()) if proc.returncode == 0 else []
    if not files:
        from mnistkit.runtime.cli import ASSETS

        print(f"load: make_samples failed ({proc.stderr.strip()[-200:]}); using the bundled samples")
        files = sorted((ASSETS / "samples").iterdir())
    return [(p.name, p.read_bytes(), int(p.name[0])) for p in files]


def rss_kib(pid: int) -> int | None:
    """Resident set size of a process, from /proc (Linux)."""
    try:
        return int(re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1))
    except (OSError, AttributeError):
        return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def run_clients(url: str, photos, clients: int, requests: int, max_seconds: float) -> dict:
    """Run the clients; return latencies, errors, wrong answers and per-second completions."""
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}
    wrong = 0
    done_at: list[float] = []
    t_start = time.perf_counter()
    deadline = t_start + max_seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(k: int) -> None:
        nonlocal wrong
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
            for i in range(requests):
                if time.perf_counter() > deadline:
                    return
                name, data, label = photos[(k * 7919 + i) % len(photos)]
                t0 = time.perf_counter()
                try:
                    res = await c.post("/api/classify", files=[("image", (name, data))])
                    if res.status_code != 200:
                        key = f"HTTP {res.status_code}: {res.json().get('error', '')[:80]}"
                        errors[key] = errors.get(key, 0) + 1
                        continue
                    wrong += res.json()["results"][0]["label"] != label
                except Exception as exc:  # noqa: BLE001 - every failure is counted, none stops the run
                    key = f"{type(exc).__name__}"
                    errors[key] = errors.get(key, 0) + 1
                    continue
                t1 = time.perf_counter()
                latencies.append(t1 - t0)
                done_at.append(t1 - t_start)

    await asyncio.gather(*(client(k) for k in range(clients)))
    return {"latencies": latencies, "errors": errors, "wrong": wrong, "done_at": done_at,
            "seconds": time.perf_counter() - t_start, "stopped_by_time": time.perf_counter() > deadline}


def startup_times(runs: int = 5) -> dict:
    """Start-up of ``mnistkit serve``, ``runs`` times: wall seconds from spawn to the first /healthz
    answer, and the CPU seconds it had used by then. Interleaved with a reference measured the same
    way at the same moments: ``python -m mnistkit.runtime`` classifying one bundled photo (the
    device CLI's cold start, spawn to exit)."""
    import resource
    import subprocess

    from mnistkit.runtime.cli import ASSETS

    wall, cpu, cli_wall, cli_cpu = [], [], [], []
    for _ in range(runs):
        running = launch.start()
        wall.append(running.startup_s)
        cpu.append(running.startup_cpu_s or float("nan"))
        running.stop()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mnistkit.runtime", str(ASSETS / "samples" / "7_handwritten.png")],
                       capture_output=True, timeout=120)
        cli_wall.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cli_cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    med = lambda v: round(statistics.median(v), 3)  # noqa: E731
    return {"median": med(wall), "runs": [round(v, 3) for v in wall], "cpu_median": med(cpu),
            "classify_cli_median": med(cli_wall), "classify_cli_runs": [round(v, 3) for v in cli_wall],
            "classify_cli_cpu_median": med(cli_cpu)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (1 if any request failed)."""
    parser = argparse.ArgumentParser(prog="python -m mnistkit.tools.serve.load", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000, help="requests per client (default 2000)")
    parser.add_argument("--photos", type=int, default=200, help="photo-like images to make (default 200)")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="stop the clients after this long")
    parser.add_argument("--out", type=Path, default=Path("reports/serve_load"),
                        help="prefix of the .json/.md/.png outputs (default reports/serve_load)")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="only re-write the .md/.png of a run measured before (its .json)")
    parser.add_argument("--startup-only", action="store_true",
                        help="only re-measure start-up, into the run already at --out (.json), and re-write it")
    parser.add_argument("serve_args", nargs="*", help="extra `mnistkit serve` options, after --")
    args = parser.parse_args(argv)
    if args.startup_only:
        summary = json.loads(args.out.with_suffix(".json").read_text())
        summary["startup_s"] = startup_times()
        write_outputs(args.out, summary)
        print(markdown(summary))
        return 0
    if args.render:
        summary = json.loads(args.render.read_text())
        summary.setdefault("not_sent", summary.pop("dropped", 0))  # the key's first name
        summary["rss_drift_mib_per_min"] = rss_drift(summary["rss_series_mib"])
        write_outputs(args.out, summary)
        print(markdown(summary))
        return 0
    if not (1 <= args.clients <= 256 and 1 <= args.requests <= 100_000 and 1 <= args.max_seconds <= 3600):
        parser.error("--clients 1-256, --requests 1-100000, --max-seconds 1-3600")

    with tempfile.TemporaryDirectory(prefix="mnistkit-load.") as tmp:
        photos = photo_set(args.photos, Path(tmp) / "photos")
    print(f"load: {len(photos)} photos ({sum(len(p[1]) for p in photos) / len(photos) / 1024:.1f} KB mean); "
          "measuring start-up (5 runs)", flush=True)
    starts = startup_times()
    running = launch.start(*args.serve_args)
    pid = running.proc.pid
    rss: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        t0 = time.perf_counter()
        while not stop.is_set():
            value = rss_kib(pid)
            if value:
                rss.append((time.perf_counter() - t0, value))
            stop.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    total = args.clients * args.requests
    print(f"load: {args.clients} clients x {args.requests} requests = {total} against {running.url}", flush=True)
    try:
        result = asyncio.run(run_clients(running.url, photos, args.clients, args.requests, args.max_seconds))
    finally:
        stop.set()
        sampler.join(5)
        alive = running.proc.poll() is None
        code = running.stop()
    lat = result["latencies"]
    errors = sum(result["errors"].values())
    sent = len(lat) + errors
    steady = [v for t, v in rss if t >= 10] or [v for _, v in rss]
    summary = {
        "clients": args.clients, "requests_per_client": args.requests, "planned": total, "sent": sent,
        "ok": len(lat), "errors": errors, "error_kinds": result["errors"], "not_sent": total - sent,
        "stopped_by_time": result["stopped_by_time"], "wrong_answers": result["wrong"],
        "photos": len(photos), "seconds": round(result["seconds"], 2),
        "requests_per_s": round(len(lat) / result["seconds"], 1),
        "latency_ms": {q: round(1e3 * percentile(lat, p), 2) for q, p in
                       (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))} if lat else None,
        "rss_mib": {"first": round(rss[0][1] / 1024, 1), "min_after_10s": round(min(steady) / 1024, 1),
                    "max": round(max(v for _, v in rss) / 1024, 1), "last": round(rss[-1][1] / 1024, 1)}
        if rss else None,
        "rss_series_mib": [[round(t, 1), round(v / 1024, 1)] for t, v in rss],
        "rss_drift_mib_per_min": rss_drift([[t, v / 1024] for t, v in rss]),
        "startup_s": starts,
        "server_alive_at_end": alive, "server_exit_code": code,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared with other work; the clients run on "
                   "the same cores as the server",
    }
    write_outputs(args.out, summary)
    print(markdown(summary))
    return 0 if errors == 0 and summary["not_sent"] == 0 else 1


def rss_drift(series: list[list[float]], after_s: float = 300.0) -> float | None:
    """Slope of a least-squares line through the RSS samples taken after ``after_s`` (MiB per minute)."""
    import numpy as np

    tail = np.array([p for p in series if p[0] >= after_s], dtype=float)
    if len(tail) < 10:
        return None
    return round(float(np.polyfit(tail[:, 0], tail[:, 1], 1)[0]) * 60, 3)


def markdown(s: dict) -> str:
    """The report section for one load run."""
    lat, rss = s["latency_ms"] or {}, s["rss_mib"] or {}
    return "\n".join([
        f"`python -m mnistkit.tools.serve.load` ({s['clients']} concurrent clients x {s['requests_per_client']:,} "
        f"requests, one photo-like digit per request, multipart, keep-alive, 127.0.0.1; default model and options; "
        f"{s['machine']}):",
        "",
        "| answered | errors (incl. dropped connections) | not sent (time cap) | wrong answers | req/s | p50 | p90 | p99 | max | server RSS (first / after 10 s min / max / last) | start-up (median of 5) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {s['ok']:,} of {s['planned']:,} | {s['errors']} | {s['not_sent']} | {s['wrong_answers']} "
        f"({s['wrong_answers'] / max(1, s['ok']):.2%}) | {s['requests_per_s']} | {lat.get('p50')} ms | {lat.get('p90')} ms "
        f"| {lat.get('p99')} ms | {lat.get('max')} ms | {rss.get('first')} / {rss.get('min_after_10s')} / "
        f"{rss.get('max')} / {rss.get('last')} MiB | {s['startup_s']['median']:.2f} s |",
        "",
        f"Latency is what the clients saw (queueing behind the other {s['clients'] - 1} clients included), on "
        f"cores that the clients themselves also use: read it as contended, not as the server's speed on an "
        f"idle machine. Wrong answers are against each photo's true digit (the photo-like set's accuracy)."
        + (f" Start-up is from spawning `mnistkit serve` to its first answer ({st['cpu_median']:.2f} s of CPU "
           f"time by then); measured interleaved with `python -m mnistkit.runtime PHOTO` (spawn to exit): "
           f"{st['classify_cli_median']:.2f} s wall, {st['classify_cli_cpu_median']:.2f} s CPU, at the same moments."
           if "cpu_median" in (st := s.get("startup_s", {})) else "")
        + (f" Server RSS after the first 300 s: a fitted drift of {s['rss_drift_mib_per_min']:+.2f} MiB per minute."
           if s.get("rss_drift_mib_per_min") is not None else ""),
    ])


def write_outputs(prefix: Path, summary: dict) -> None:
    """Write ``prefix``.json, .md and (with matplotlib) .png (RSS and completions per second over time)."""
    from mnistkit.models.artifacts import write_bytes_atomic

    prefix.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(prefix.with_suffix(".json"), json.dumps(summary, indent=1).encode())
    write_bytes_atomic(prefix.with_suffix(".md"), (markdown(summary) + "\n").encode())
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    series = summary["rss_series_mib"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot([t for t, _ in series], [v for _, v in series], color="tab:blue")
    ax.set_xlabel("seconds into the load run")
    ax.set_ylabel("server RSS (MiB)", color="tab:blue")
    ax.set_ylim(0, max(v for _, v in series) * 1.25)
    ax.set_title(f"mnistkit serve under {summary['clients']} clients: {summary['requests_per_s']} req/s, "
                 f"{summary['errors']} errors")
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(prefix.with_suffix(".png"), buf.getvalue())


if __name__ == "__main__":
    sys.exit(main())
