"""`mnistkit serve`: the JSON API against a real server process on a free loopback port.

The server runs as a child process with TensorFlow & co. made unimportable, so every answer here
also shows that serving never needs them. Expected labels come from the sample files' names (the
digit drawn in them), not from the code under test.
"""

from __future__ import annotations

import base64
import io
import json
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
PIL_Image = pytest.importorskip("PIL.Image")

from click.testing import CliRunner  # noqa: E402

from _fixtures_runtime import eval_images, rt_models  # noqa: E402,F401

from mnistkit.runtime.cli import ASSETS, DEFAULT_MODEL, classify  # noqa: E402
from mnistkit.tools.serve import launch  # noqa: E402

SAMPLES = sorted((ASSETS / "samples").iterdir())
HEAVY = ("tensorflow", "tf2onnx", "onnx", "matplotlib", "keras", "tf_keras")
BLOCK_HEAVY = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in HEAVY)


def expected(path: Path) -> int:
    return int(path.name[0])


@pytest.fixture(scope="module")
def server():
    running = launch.start("--max-upload-mb", "2", "--threads", "2", prelude=BLOCK_HEAVY)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def post_files(client, paths_or_bytes, params=None, data=None):
    files = []
    for item in paths_or_bytes:
        if isinstance(item, Path):
            files.append(("image", (item.name, item.read_bytes(), "application/octet-stream")))
        else:
            files.append(("image", item))
    return client.post("/api/classify", files=files, params=params, data=data)


def assert_error(res, status: int, *words: str) -> str:
    assert res.status_code == status, res.text
    doc = res.json()
    assert set(doc) == {"error", "status"} and doc["status"] == status
    msg = doc["error"]
    assert "\n" not in msg and "Traceback" not in msg and len(msg) < 400
    for word in words:
        assert word.lower() in msg.lower(), msg
    return msg


def encode(image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def every_format() -> dict[str, tuple[bytes, str]]:
    """The 3 of the samples in every format the server accepts (name -> bytes, content type)."""
    src = PIL_Image.open(ASSETS / "samples" / "3_handwritten.png").convert("RGB")
    gray = src.convert("L")
    rgba = src.convert("RGBA")
    rgba.putalpha(PIL_Image.eval(gray, lambda v: 255 - v))  # ink opaque, paper transparent
    sixteen = PIL_Image.fromarray(np.asarray(gray, np.uint16) * 257)
    return {
        "png": (encode(src, "PNG"), "image/png"),
        "png-gray16": (encode(sixteen, "PNG"), "image/png"),
        "png-rgba": (encode(rgba, "PNG"), "image/png"),
        "jpeg": (encode(src, "JPEG", quality=90), "image/jpeg"),
        "gif": (encode(src.convert("P"), "GIF"), "image/gif"),
        "bmp": (encode(src, "BMP"), "image/bmp"),
        "tiff": (encode(src, "TIFF"), "image/tiff"),
        "webp": (encode(src, "WEBP", quality=90), "image/webp"),
        "ppm": (encode(src, "PPM"), "image/x-portable-pixmap"),
        "pgm": (encode(gray, "PPM"), "image/x-portable-graymap"),
        "pbm": (encode(gray.point(lambda v: 255 if v > 128 else 0).convert("1"), "PPM"),
                "image/x-portable-bitmap"),
    }


@pytest.mark.parametrize("kind", sorted(every_format()))
def test_every_supported_format_as_multipart_and_raw_body(client, kind):
    data, ctype = every_format()[kind]
    res = post_files(client, [(f"three.{kind}", data, ctype)])
    assert res.status_code == 200, res.text
    rec = res.json()["results"][0]
    assert rec["label"] == 3 and rec["source"] == f"three.{kind}"
    raw = client.post("/api/classify", content=data, headers={"Content-Type": ctype})
    assert raw.status_code == 200, raw.text
    assert raw.json()["results"][0]["label"] == 3


def test_several_images_give_the_classify_json_records_in_order(client, tmp_path):
    res = post_files(client, SAMPLES)
    assert res.status_code == 200, res.text
    doc = res.json()
    assert [r["source"] for r in doc["results"]] == [p.name for p in SAMPLES]
    assert [r["label"] for r in doc["results"]] == [expected(p) for p in SAMPLES]
    assert doc["summary"]["images"] == doc["summary"]["classified"] == len(SAMPLES)
    assert doc["summary"]["backend"] == "litert" and doc["summary"]["model"] == DEFAULT_MODEL.name
    # The same record per image as `mnistkit classify --json` (the CLI, in this process, with TF allowed).
    cli = CliRunner().invoke(classify, ["--json", *map(str, SAMPLES)])
    assert cli.exit_code == 0, cli.output
    for api_rec, cli_rec in zip(doc["results"], json.loads(cli.output)["results"]):
        assert set(api_rec) == set(cli_rec)
        for key in ("label", "confidence", "top_k", "probabilities"):
            assert api_rec[key] == cli_rec[key], key
        assert api_rec["time_ms"] > 0


def test_top_k_and_debug_image(client):
    seven = ASSETS / "samples" / "7_handwritten.png"
    res = post_files(client, [seven], params={"top_k": 5, "debug": "1"})
    rec = res.json()["results"][0]
    assert [k[0] for k in rec["top_k"]][0] == 7 and len(rec["top_k"]) == 5
    assert rec["top_k"] == sorted(rec["top_k"], key=lambda t: -t[1])
    head, b64 = rec["input_png"].split(",", 1)
    assert head == "data:image/png;base64"
    seen = PIL_Image.open(io.BytesIO(base64.b64decode(b64)))
    assert seen.size == (28, 28) and seen.mode == "L"
    px = np.asarray(seen)
    assert px[:3].max() < 40 and px.max() > 200  # MNIST-style: dark frame, white ink
    form = post_files(client, [seven], data={"top_k": "1"})
    assert len(form.json()["results"][0]["top_k"]) == 1 and "input_png" not in form.json()["results"][0]


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels: how decompression bombs start."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def bad_inputs() -> list[tuple[str, dict, int, tuple[str, ...]]]:
    """(name, httpx request kwargs, expected status, words the message must hold)."""
    png = (ASSETS / "samples" / "7_handwritten.png").read_bytes()
    white = encode(PIL_Image.new("L", (60, 60), 255), "PNG")
    ico = encode(PIL_Image.open(io.BytesIO(png)).convert("RGB").resize((32, 32)), "ICO")
    big = bytes(3 * 2**20)
    return [
        ("text body", {"content": b"hello, not an image", "headers": {"Content-Type": "text/plain"}},
         415, ("not an image",)),
        ("text upload", {"files": [("image", ("notes.txt", b"just text", "text/plain"))]}, 415, ("notes.txt",)),
        ("unsupported format", {"files": [("image", ("icon.ico", ico, "image/x-icon"))]}, 415, ("supported",)),
        ("svg", {"files": [("image", ("d.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"))]},
         415, ()),
        ("truncated png", {"files": [("image", ("cut.png", png[: len(png) // 2], "image/png"))]},
         400, ("cut.png", "truncated")),
        ("corrupt header", {"files": [("image", ("bad.png", png[:20], "image/png"))]}, 400, ("bad.png",)),
        ("blank image", {"files": [("image", ("white.png", white, "image/png"))]}, 400, ("no digit",)),
        ("bomb header", {"files": [("image", ("bomb.png", bomb_png(60_000, 60_000), "image/png"))]},
         413, ("bomb", "without decoding")),
        ("too large (Content-Length)", {"content": big, "headers": {"Content-Type": "image/png"}},
         413, ("2 MB",)),
        ("too large (chunked)", {"content": iter([bytes(2**20)] * 3), "headers": {"Content-Type": "image/png"}},
         413, ("limit",)),
        ("too many images", {"files": [("image", ("7.png", png, "image/png"))] * 17}, 413, ("at most 16",)),
        ("empty body", {"content": b"", "headers": {"Content-Type": "image/png"}}, 422, ("no image",)),
        ("no image field", {"files": [("picture", ("7.png", png, "image/png"))]}, 422, ("`image`",)),
        ("image as text field", {"data": {"image": "hello"}, "files": [("other", ("x", b"x", "text/plain"))]},
         422, ("file upload",)),
        ("top_k 0", {"params": {"top_k": "0"}, "files": [("image", ("7.png", png, "image/png"))]},
         422, ("top_k",)),
        ("top_k text", {"params": {"top_k": "many"}, "files": [("image", ("7.png", png, "image/png"))]},
         422, ("top_k", "many")),
        ("top_k 11 in form", {"data": {"top_k": "11"}, "files": [("image", ("7.png", png, "image/png"))]},
         422, ("1 to 10",)),
        ("debug maybe", {"params": {"debug": "maybe"}, "files": [("image", ("7.png", png, "image/png"))]},
         422, ("debug",)),
        ("empty upload", {"files": [("image", ("e.png", b"", "image/png"))]}, 400, ("empty",)),
    ]


@pytest.mark.parametrize("name,request_kw,status,words", bad_inputs(), ids=[b[0] for b in bad_inputs()])
def test_each_bad_input_gets_its_status_and_one_line(client, name, request_kw, status, words):
    try:
        res = client.post("/api/classify", **request_kw)
    except httpx.TransportError as exc:  # the server may close while a refused body is still sent
        pytest.fail(f"{name}: no HTTP answer ({exc!r})")
    assert_error(res, status, *words)
    ok = post_files(client, [ASSETS / "samples" / "1_handwritten.png"])  # still serving, correctly
    assert ok.status_code == 200 and ok.json()["results"][0]["label"] == 1


def test_other_routes_and_methods_answer_json(client):
    assert_error(client.get("/api/classify"), 405, "GET")
    assert_error(client.get("/etc/passwd"), 404, "no such page")
    assert_error(client.get("/../../etc/passwd"), 404)
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.") and {"/api/classify", "/api/model", "/healthz"} <= set(spec["paths"])
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text and "Content-Security-Policy" in page.headers
    assert "http" not in re.sub(r"http://www\.w3\.org|https?://[^\"']*localhost", "", page.text)  # no CDN


def test_model_description_matches_the_manifest_and_file(client):
    import hashlib

    info = client.get("/api/model").json()
    manifest = json.loads(DEFAULT_MODEL.with_name(DEFAULT_MODEL.name + ".json").read_text())
    assert info["sha256"] == hashlib.sha256(DEFAULT_MODEL.read_bytes()).hexdigest()
    assert (info["format"], info["mode"], info["model"]) == ("tflite", manifest["mode"], manifest["model"])
    assert info["test_accuracy"] == manifest["parity"]["artifact_accuracy"]
    assert info["parity"]["passed"] is True and info["backend"] == "litert"
    assert info["describe"]["input_dtype"] == manifest["input"]["dtype"]
    assert "path" not in info["describe"] and str(DEFAULT_MODEL.parent) not in json.dumps(info)
    assert info["limits"]["max_upload_bytes"] == 2 * 2**20


def test_concurrent_requests_answer_like_sequential_ones(client, server):
    reference = {p.name: post_files(client, [p]).json()["results"][0]["probabilities"] for p in SAMPLES}
    errors, answers = [], []

    def worker(offset: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            for i in range(6):
                path = SAMPLES[(offset + i) % len(SAMPLES)]
                try:
                    res = c.post("/api/classify", files=[("image", (path.name, path.read_bytes()))])
                    rec = res.json()["results"][0]
                    answers.append((path.name, rec["label"], rec["probabilities"]))
                except Exception as exc:  # noqa: BLE001 - collected and asserted below
                    errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and len(answers) == 16 * 6
    for name, label, proba in answers:
        assert label == int(name[0]) and proba == reference[name]
    assert "Traceback" not in server.text()


@pytest.fixture(scope="module")
def strict_server():
    """A second server: one worker thread, a 2-second time limit per request."""
    running = launch.start("--threads", "1", "--timeout", "2")
    yield running
    running.stop()


def test_a_real_decompression_bomb_is_refused_without_decoding(strict_server):
    """A real 64-megapixel PNG (~60 KB): the server's peak memory must not grow by its 64 MB."""
    bomb = encode(PIL_Image.new("L", (8000, 8000), 0), "PNG", optimize=False)
    assert len(bomb) < 2**20

    def peak_kb() -> int:
        status = Path(f"/proc/{strict_server.proc.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))

    with httpx.Client(base_url=strict_server.url, timeout=30) as c:
        c.post("/api/classify", files=[("image", ("a.png", (ASSETS / "samples" / "2_printed.jpg").read_bytes()))])
        before = peak_kb()
        assert_error(c.post("/api/classify", files=[("image", ("bomb.png", bomb, "image/png"))]),
                     413, "8000x8000", "without decoding")
        assert peak_kb() - before < 32 * 1024


def test_a_slow_upload_is_cut_off_with_408(strict_server):
    """Headers, then 10 of the 5,000 announced bytes, then silence: answered 408 after the 2 s limit."""
    import socket as socketlib

    host, port = strict_server.url.split("//")[1].strip("/").split(":")
    with socketlib.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(b"POST /api/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                     b"Content-Length: 5000\r\n\r\n" + b"\x89PNG\r\n\x1a\n..")
        answer = b""
        while b"}" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:300]
    assert json.loads(body)["error"].startswith("the upload took over 2 s")
    with httpx.Client(base_url=strict_server.url, timeout=30) as c:  # and it goes on serving
        assert c.get("/healthz").status_code == 200


def test_ctrl_c_stops_cleanly_and_port_in_use_is_one_line():
    running = launch.start("--host", "127.0.0.2")  # loopback, but not the default: warns
    try:
        with httpx.Client(base_url=running.url, timeout=30) as c:
            assert c.post("/api/classify", files=[("image", ("7.png", (ASSETS / "samples" / "7_handwritten.png")
                                                             .read_bytes()))]).status_code == 200
        port = int(running.url.rsplit(":", 1)[1].strip("/"))
        busy = subprocess.run([sys.executable, "-m", "mnistkit.tools.cli", "serve", "--host", "127.0.0.2",
                               "--port", str(port)], capture_output=True, text=True, timeout=60)
        assert busy.returncode == 1 and "in use" in busy.stderr and "Traceback" not in busy.stderr
        assert len(busy.stderr.strip().splitlines()) == 1  # the same port again: one line, exit 1
    finally:
        code = running.stop(signal.SIGINT)
    out = running.text()
    assert code == 0, out
    assert "warning: listening on 127.0.0.2" in out and "mnistkit serve: stopped" in out
    assert "Traceback" not in out and "INFO: Created TensorFlow Lite" not in out


IN_PROCESS = """
import json, sys, threading, urllib.request
import uvicorn
from mnistkit.runtime.classifier import Classifier
from mnistkit.runtime.cli import ASSETS, DEFAULT_MODEL
from mnistkit.tools.serve import api, server
from mnistkit.tools.serve.app import create_app

clf = Classifier.load(DEFAULT_MODEL, threads=1)
limits = api.Limits()
state = api.ServeState(clf, server.make_pool(2), limits, api.model_info(clf, limits))
sock = server.bind("127.0.0.1", 0)
srv = uvicorn.Server(uvicorn.Config(create_app(state), log_level="warning", lifespan="off"))
thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
thread.start()
url = server.url_of(sock, "127.0.0.1")
for _ in range(500):
    try:
        urllib.request.urlopen(url + "healthz", timeout=5).read()
        break
    except OSError:
        import time; time.sleep(0.02)
urllib.request.urlopen(url, timeout=10).read()
urllib.request.urlopen(url + "api/model", timeout=10).read()
body = (ASSETS / "samples" / "9_handwritten.png").read_bytes()
req = urllib.request.Request(url + "api/classify?debug=1", data=body, headers={"Content-Type": "image/png"})
label = json.loads(urllib.request.urlopen(req, timeout=30).read())["results"][0]["label"]
srv.should_exit = True
thread.join(30)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in %r)
print(json.dumps({"label": label, "heavy": heavy}))
""" % (HEAVY,)


def test_serving_never_imports_tensorflow():
    """Nothing blocked here: the server, in one process, must simply never import TF & co."""
    proc = subprocess.run([sys.executable, "-c", IN_PROCESS], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"label": 9, "heavy": []}


def test_an_onnx_model_serves_concurrent_requests_like_the_library(rt_models, eval_images):
    """--model with an .onnx file: onnxruntime's one shared session under 8 concurrent clients."""
    pytest.importorskip("onnxruntime")
    from mnistkit.runtime import Classifier

    images = eval_images[0][:16]
    pngs = [encode(PIL_Image.fromarray(im), "PNG") for im in images]
    expected_labels = [p.label for p in Classifier.load(rt_models / "mlp_none.onnx").classify(images)]
    running = launch.start("--model", str(rt_models / "mlp_none.onnx"), "--threads", "2", prelude=BLOCK_HEAVY)
    got: dict[int, int] = {}
    try:
        def worker(k: int) -> None:
            with httpx.Client(base_url=running.url, timeout=60) as c:
                for i in range(k, len(pngs), 8):
                    res = c.post("/api/classify", content=pngs[i], headers={"Content-Type": "image/png"})
                    got[i] = res.json()["results"][0]["label"]

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        with httpx.Client(base_url=running.url, timeout=30) as c:
            info = c.get("/api/model").json()
    finally:
        running.stop()
    assert info["backend"] == "onnxruntime" and info["format"] == "onnx" and info["file"] == "mlp_none.onnx"
    assert [got.get(i) for i in range(len(pngs))] == expected_labels
