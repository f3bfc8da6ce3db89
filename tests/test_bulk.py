"""Bulk `mnistkit classify`: sources, streaming output, --jobs, resume, Ctrl-C, exit codes.

Runs the bundled default model on real MNIST digits written as image files (no TensorFlow).
Interruption is tested with a real SIGINT to a real `mnistkit classify` process.
"""

from __future__ import annotations

import csv
import json
import os
import pty
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mnistkit.runtime.cli import DEFAULT_MODEL, classify
from mnistkit.runtime.errors import ImageError
from mnistkit.runtime.sources import Census, iter_sources, read_image_file

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="no bundled default model")
MK = [sys.executable, "-m", "mnistkit.runtime"]


def _photo(digit: np.ndarray, side: int) -> np.ndarray:
    """An MNIST digit as dark ink on light paper, enlarged: goes through the full photo path."""
    from PIL import Image

    big = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR))
    return (235 - big.astype(np.int32) * 200 // 255).astype(np.uint8)


@pytest.fixture(scope="module")
def digits(mnist, tmp_path_factory):
    """300 MNIST test digits as files in a tree (a/, a/b/): plain 28x28 PNGs and photo-like JPEGs."""
    from PIL import Image

    root = tmp_path_factory.mktemp("digits")
    (root / "a" / "b").mkdir(parents=True)
    labels = {}
    for i in range(300):
        folder = root / ("a/b" if i % 3 == 2 else "a")
        if i % 2:
            path = folder / f"{i:04d}.png"
            Image.fromarray(mnist.x_test[i]).save(path)
        else:
            path = folder / f"{i:04d}.jpg"
            Image.fromarray(_photo(mnist.x_test[i], 96)).save(path, quality=92)
        labels[str(path)] = int(mnist.y_test[i])
    return root, labels


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(classify, list(args), input=input)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def strip_time(recs: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time_ms"} for r in recs]


def test_sources_walk_reports_bad_entries(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/1.png", "d/2.JPG", "d/sub/3.png", "d/notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "d" / "sub" / "loop").symlink_to("..")
    (tmp_path / "d" / "dangling.png").symlink_to("nowhere.png")
    os.mkfifo(tmp_path / "d" / "fifo.png")
    d = str(tmp_path / "d")

    census = Census()
    flat = list(iter_sources([d], census=census))
    assert [Path(s.name).name for s in flat] == ["1.png", "2.JPG", "dangling.png", "fifo.png"]
    errors = {Path(s.name).name: s.error for s in flat if s.error}
    assert "dangling symlink" in errors["dangling.png"] and "FIFO" in errors["fifo.png"]
    assert census.not_images == 1 and census.subfolders == 1

    deep = list(iter_sources([d], recursive=True))
    names = [Path(s.name).name for s in deep]
    assert names[:4] == ["1.png", "2.JPG", "dangling.png", "fifo.png"] and "3.png" in names
    loop = [s for s in deep if Path(s.name).name == "loop"]
    assert len(loop) == 1 and "symlink loop" in loop[0].error

    globbed = list(iter_sources([str(tmp_path / "d" / "*.png"), str(tmp_path / "none*.png")]))
    assert {Path(s.name).name for s in globbed[:-1]} == {"1.png", "dangling.png", "fifo.png"}
    assert "no file matches" in globbed[-1].error

    import io

    listed = list(iter_sources(["-"], stdin=io.StringIO(f"{d}/1.png\n\n{d}/missing.png\n")))
    assert [s.error is None for s in listed] == [True, False] and "no such file" in listed[1].error


def test_fifo_named_explicitly_never_hangs(tmp_path):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    with pytest.raises(ImageError, match="FIFO"):
        read_image_file(str(fifo))
    proc = subprocess.run([*MK, str(fifo)], capture_output=True, text=True, timeout=60)
    assert time.perf_counter() - t0 < 60
    assert proc.returncode == 1 and "not a regular file (a FIFO)" in proc.stderr


def test_output_jsonl_csv_and_jobs_identical(digits, tmp_path):
    root, labels = digits
    out1, out2, out3 = tmp_path / "j1.jsonl", tmp_path / "j2.jsonl", tmp_path / "t2.jsonl"
    res = run("-r", str(root), "--output", str(out1), "--batch-size", "16")
    assert res.exit_code == 0, res.output
    assert "images/s" in res.output and "stage time decode" in res.output
    one = records(out1)
    assert [r["source"] for r in one] == sorted(labels, key=lambda p: (Path(p).parent != root / "a", p))
    acc = np.mean([r["label"] == labels[r["source"]] for r in one])
    assert acc >= 0.95, acc  # the right images were classified, not just some
    res2 = run("-r", str(root), "--output", str(out2), "--jobs", "2", "--batch-size", "16")  # processes
    assert res2.exit_code == 0, res2.output
    # One job reports its elapsed time; two report summed work, which is not elapsed time.
    assert " image(s) in " in res.output and "ms of work over 2 workers" in res2.output
    assert run("-r", str(root), "--output", str(out3), "--jobs", "2", "--executor", "thread",
               "--batch-size", "16").exit_code == 0
    assert strip_time(records(out2)) == strip_time(one) == strip_time(records(out3))

    out_csv = tmp_path / "r.csv"
    assert run("-r", str(root), "--output", str(out_csv)).exit_code == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert [(r["source"], int(r["label"])) for r in rows] == [(r["source"], r["label"]) for r in one]
    assert abs(sum(float(rows[0][f"p{d}"]) for d in range(10)) - 1) < 0.02

    res = run(str(root / "a" / "b"), "--jsonl")  # JSON Lines on stdout
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(lines) == 100 and all(r["source"] in labels for r in lines)


def test_text_and_json_from_stdin_list(digits):
    root, labels = digits
    some = sorted(labels)[:5]
    res = run("-", input="\n".join(some) + "\n" + str(root / "missing.png") + "\n")
    assert res.exit_code == 1
    assert [ln.split(":")[0] for ln in res.stdout.splitlines()[:5]] == some
    assert "no such file" in res.stderr and "classified 5 of 6 image(s)" in res.stdout


@pytest.mark.parametrize("args, needle", [
    (["--resume"], "--resume continues an --output file"),
    (["--json", "--jsonl"], "pick one"),
    (["--output", "x.txt"], "unknown format"),
    (["--output", "no/such/dir/x.jsonl"], "does not exist"),
    (["--engine", "ray", "--jobs", "2"], "cannot be used with --engine ray"),
    (["--address", "auto"], "need --engine ray"),
])
def test_usage_errors_exit_2(digits, args, needle):
    root, _ = digits
    res = run(str(root), *args)
    assert res.exit_code == 2 and needle in res.output and "Traceback" not in res.output


def test_existing_output_needs_resume_and_resume_skips_done(digits, tmp_path):
    root, labels = digits
    full = tmp_path / "full.jsonl"
    assert run("-r", str(root), "--output", str(full)).exit_code == 0
    res = run("-r", str(root), "--output", str(full))
    assert res.exit_code == 2 and "--resume" in res.output

    part = tmp_path / "part.jsonl"
    lines = full.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:120]) + lines[120][:30])  # a line cut mid-write
    res = run("-r", str(root), "--output", str(part), "--resume")
    assert res.exit_code == 0, res.output
    assert "120 already in" in res.output
    assert strip_time(records(part)) == strip_time(records(full))


def _start(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([*MK, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, **kw)


def _interrupt_when(proc: subprocess.Popen, ready, timeout: float = 90, read: bool = True):
    end = time.monotonic() + timeout
    while not ready() and time.monotonic() < end and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    if not read:  # the caller reads stdout itself
        proc.wait(timeout=60)
        return None
    return proc.communicate(timeout=60)


@pytest.fixture(scope="module")
def many(mnist, tmp_path_factory):
    """1,500 photo-like files: slow enough (~several ms each) to interrupt mid-run."""
    from PIL import Image

    root = tmp_path_factory.mktemp("many")
    for i in range(1500):
        Image.fromarray(_photo(mnist.x_test[i % 200], 200)).save(root / f"{i:05d}.png")
    return root


def test_ctrl_c_keeps_records_and_resume_finishes(many, tmp_path):
    out = tmp_path / "out.jsonl"
    proc = _start([str(many), "--output", str(out), "--jobs", "2", "--batch-size", "8"])
    _, err = _interrupt_when(proc, lambda: out.exists() and out.stat().st_size > 2000)
    assert proc.returncode == 130, err
    assert "Resume with" in err and "Traceback" not in err
    # The printed command is the one that was typed, plus --resume.
    hint = shlex.split(err.split("Resume with:")[1].strip().splitlines()[0])
    assert hint == ["python", "-m", "mnistkit.runtime", str(many), "--output", str(out), "--jobs", "2",
                    "--batch-size", "8", "--resume"]
    kept = records(out)  # every line complete and parseable
    assert 0 < len(kept) < 1500
    assert [r["source"] for r in kept] == [str(many / f"{i:05d}.png") for i in range(len(kept))]

    proc = subprocess.run([*MK, str(many), "--output", str(out), "--resume", "--batch-size", "8"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    done = records(out)
    assert [r["source"] for r in done] == [str(many / f"{i:05d}.png") for i in range(1500)]
    assert f"{len(kept):,} already in" in proc.stdout


def test_ctrl_c_json_keeps_finished_records(many):
    proc = _start([str(many), "--json", "--batch-size", "8"])
    lines: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    _interrupt_when(proc, lambda: len(lines) > 20, read=False)
    reader.join(30)
    proc.stderr.close()
    doc = json.loads("".join(lines))
    assert proc.returncode == 130
    assert doc["summary"]["interrupted"] is True
    assert 20 <= len(doc["results"]) == doc["summary"]["images"] < 1500


def test_progress_bar_only_on_a_terminal(digits, tmp_path):
    root, _ = digits
    primary, secondary = pty.openpty()
    out = tmp_path / "p.jsonl"
    proc = subprocess.Popen([*MK, "-r", str(root), "--output", str(out), "--batch-size", "8"],
                            stdout=subprocess.PIPE, stderr=secondary, text=True)
    os.close(secondary)
    stdout, _ = proc.communicate(timeout=120)
    chunks = []
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(primary)
    tty = b"".join(chunks).decode()
    assert proc.returncode == 0 and "img/s" in tty and "ETA" in tty and "/300 images" in tty
    assert "img/s" not in stdout  # not a terminal: no bar
    quiet = subprocess.run([*MK, str(root / "a" / "b"), "--output", str(tmp_path / "q.jsonl")],
                           capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0 and "img/s" not in quiet.stderr


def test_bulk_runtime_stands_alone(digits, tmp_path):
    """The streaming engine needs no TensorFlow and nothing of mnistkit outside the runtime."""
    root, _ = digits
    blocked = ("tensorflow", "keras", "mnistkit.tools", "mnistkit.models", "mnistkit.export")
    code = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked) + (
        "from mnistkit.runtime.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "print(sorted(m for m in sys.modules if m.startswith('mnistkit.') and sys.modules[m] is not None"
        " and not m.startswith('mnistkit.runtime')))\n")
    out = tmp_path / "o.jsonl"
    proc = subprocess.run([sys.executable, "-c", code, str(root), "-r", "--jobs", "2", "--output", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]" and len(records(out)) == 300


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_explicit_unreadable_file_is_a_per_item_error(digits, tmp_path):
    root, labels = digits
    locked = tmp_path / "locked.png"
    locked.write_bytes(Path(sorted(labels)[0]).read_bytes())
    locked.chmod(0)
    res = run(str(locked), sorted(labels)[1])
    assert res.exit_code == 1 and "cannot open" in res.stderr and "classified 1 of 2" in res.stdout


def test_throughput_script_runs(digits):
    """tools/bench/bulk.py stays runnable (tiny folder; its figures are not checked here)."""
    pytest.importorskip("psutil")
    from mnistkit.tools.bench import bulk as bench_bulk

    root, _ = digits
    doc = {}
    for name in ("jobs1", "process2_numpy"):
        args, env = bench_bulk.run_args(name)
        doc[name] = bench_bulk.run_once(root / "a" / "b", args, root.parent / f"{name}.jsonl", env)
        assert doc[name]["images"] == 100 and doc[name]["peak_rss_mib"] > 10
    assert doc["process2_numpy"]["kernels"] == "numpy"
    assert bench_bulk.labels(root.parent / "jobs1.jsonl") == bench_bulk.labels(root.parent / "process2_numpy.jsonl")


def test_closed_stdout_stops_quietly(digits):
    """`mnistkit classify --jsonl DIR | head -1`: no traceback when the reader goes away."""
    root, _ = digits
    proc = subprocess.Popen([*MK, "-r", str(root), "--jsonl", "--batch-size", "4"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert json.loads(proc.stdout.readline())["source"]
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 1 and "Traceback" not in err and "Exception ignored" not in err


def test_process_workers_get_one_blas_thread_and_the_caller_keeps_its_environment(monkeypatch):
    from mnistkit.runtime import Classifier
    from mnistkit.runtime.bulk import BLAS_SINGLE_THREAD, BulkJob

    for var in BLAS_SINGLE_THREAD:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the caller's own choice reaches the workers
    job = BulkJob(Classifier.load(DEFAULT_MODEL), jobs=2, executor="process")
    pool = job._make_pool()
    try:
        tasks = [pool.submit(_worker_env, list(BLAS_SINGLE_THREAD)) for _ in range(20)]
        seen = {task.result() for task in tasks}
    finally:
        pool.shutdown()
    assert len({pid for pid, _ in seen}) == 2  # both workers answered
    assert {env for _, env in seen} == {("1", "3", "1")}
    assert [os.environ.get(v) for v in BLAS_SINGLE_THREAD] == [None, "3", None]


def _worker_env(names: list[str]) -> tuple[int, tuple]:
    time.sleep(0.25)  # 20 of these keep one worker busy 5 s: the other, however slow to start, gets some
    return os.getpid(), tuple(os.environ.get(n) for n in names)


def test_workers_started_early_serve_the_run_or_stop_on_close(digits):
    psutil = pytest.importorskip("psutil")
    from mnistkit.runtime import Classifier
    from mnistkit.runtime.bulk import BulkJob

    root, labels = digits
    def workers(expect: int | None = None) -> set[int]:
        """Spawned workers (multiprocessing's resource tracker stays); a child just forked still
        shows the parent's command line until it execs, so wait up to 10 s for ``expect`` of them."""
        deadline = time.monotonic() + 10
        while True:
            found = {p.pid for p in psutil.Process().children() if "spawn_main" in " ".join(p.cmdline())}
            if expect is None or len(found) == expect or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    clf = Classifier.load(DEFAULT_MODEL)
    job = BulkJob(clf, jobs=2)
    job.start()
    started = workers(expect=2)
    assert len(started) == 2  # both workers exist before any run
    job.close()
    assert not started & workers()

    job = BulkJob(clf, jobs=2)
    job.start()
    started = workers(expect=2)
    records: list[dict] = []
    stats = job.run(iter_sources([str(root / "a" / "b")]), emit=records.extend)
    assert stats.classified == 100 and len(records) == 100
    assert started and not started & workers()  # run() used and then stopped the started workers
