"""`mnistkit serve` on an emulated Raspberry Pi: the `serve` extra installs from aarch64 wheels and
the server answers a real HTTP client on 127.0.0.1 with the right digits (qemu-aarch64-static)."""

from __future__ import annotations

import shutil
import time

import pytest

from mnistkit.runtime.cli import ASSETS

httpx = pytest.importorskip("httpx")
pytestmark = [pytest.mark.pi,
              pytest.mark.skipif(shutil.which("qemu-aarch64-static") is None,
                                 reason="qemu-aarch64-static not found; apt-get install qemu-user-static")]


@pytest.mark.timeout(900)
def test_serve_runs_on_the_emulated_pi():
    from mnistkit.tools.pi import emu, sysroot, wheels
    from mnistkit.tools.pi.common import cache_dir
    from mnistkit.tools.serve import launch

    sysroot.build()
    sites = wheels.install_all()
    names = {r["name"].lower().replace("_", "-") for r in wheels.resolved(cache_dir() / "site")}
    assert {"starlette", "uvicorn", "python-multipart"} <= names
    argv, env = emu.command([], [sites["mnistkit"], sites["base"]])
    running = launch.start("--threads", "1", python=argv, env=env, timeout=300,
                           prelude="import sys\nfor m in ('tensorflow', 'keras'):\n    sys.modules[m] = None\n")
    try:
        t0 = time.perf_counter()
        samples = [ASSETS / "samples" / n for n in ("3_handwritten.png", "6_printed.jpg")]
        with httpx.Client(base_url=running.url, timeout=120) as c:
            info = c.get("/api/model").json()
            res = c.post("/api/classify", params={"debug": 1},
                         files=[("image", (p.name, p.read_bytes())) for p in samples])
            bad = c.post("/api/classify", content=b"not an image", headers={"Content-Type": "text/plain"})
        assert res.status_code == 200, res.text
        assert [r["label"] for r in res.json()["results"]] == [3, 6]
        assert info["backend"] == "litert" and bad.status_code == 415
        print(f"emulated Pi: start-up {running.startup_s:.1f} s, 2 photos + model + refusal "
              f"{time.perf_counter() - t0:.1f} s (emulation: ~100x slower than a real Pi)")
    finally:
        code = running.stop()
    assert code == 0 and "Traceback" not in running.text(), running.text()[-2000:]
