"""`mnistkit serve`'s page in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Draws a 1 and a 7 with mouse strokes, a 1 with touch on a phone-sized page, uploads a sample photo,
uploads a file that is not an image, and checks what the page shows each time. Screenshots go to
``$MNISTKIT_TEST_ARTIFACTS`` (default ``runs/test-artifacts``). Skipped only where no Chromium is
installed, and never under CI (``CI=true``), where `.ci/run` installs it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from mnistkit.runtime.cli import ASSETS

CHROMIUM = os.environ.get("MNISTKIT_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("MNISTKIT_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[1] / "runs" / "test-artifacts"))


def _need(what: str, ok: bool) -> None:
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is missing under CI: .ci/run must install it")
        pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    _need("the playwright package", sync_playwright is not None)
    _need(f"chromium ({CHROMIUM})", Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is not None)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server():
    pytest.importorskip("starlette")
    from mnistkit.tools.serve import launch

    running = launch.start("--threads", "2")
    yield running
    running.stop()


def stroke(page, points, box) -> None:
    """Press, move through ``points`` (fractions of the canvas), release: one mouse stroke."""
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(xy, xy[1:]):
        page.mouse.move(x1, y1, steps=12)
    page.mouse.up()


def shown(page, digit: str, source: str) -> None:
    page.wait_for_function(
        "([d, s]) => document.getElementById('digit').textContent === d"
        " && document.getElementById('digit').dataset.source === s", arg=[digit, source], timeout=15000)


def test_draw_a_1_and_a_7_with_the_mouse(browser, server):
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    page.goto(server.url)
    # Predicates as functions: a string one is eval'd in the page when it has to poll, which the
    # page's CSP (script-src 'self') refuses.
    page.wait_for_function("() => document.getElementById('model').textContent.includes('on litert')")
    bundled = json.loads((ASSETS / "default.tflite.json").read_text())["parity"]["artifact_accuracy"]
    assert f"{100 * bundled:.2f}% on MNIST test" in page.text_content("#model")
    box = page.locator("#pad").bounding_box()

    stroke(page, [(0.5, 0.15), (0.5, 0.85)], box)
    shown(page, "1", "draw")
    assert page.is_visible("#seen") and "ms on the server" in page.text_content("#timing")
    top = page.locator("#bars li.top")
    assert top.count() == 1 and top.locator("span").first.text_content() == "1"

    page.click("#clear")
    page.wait_for_function("() => document.getElementById('digit').textContent === '–'")
    stroke(page, [(0.22, 0.2), (0.78, 0.2), (0.42, 0.88)], box)
    shown(page, "7", "draw")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve_page.png"))
    page.close()


def test_upload_a_photo_and_a_file_that_is_not_one(browser, server, tmp_path):
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    page.goto(server.url)
    photo = ASSETS / "samples" / "4_printed.jpg"
    page.set_input_files("#file", str(photo))
    shown(page, "4", "photo")
    assert page.is_visible("#photo") and page.is_visible("#seen")
    page.screenshot(path=str(ARTIFACTS / "serve_photo.png"))

    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    page.set_input_files("#file", str(notes))
    page.wait_for_selector("#message:not([hidden])", timeout=15000)
    assert "not an image" in page.text_content("#message")
    assert page.text_content("#digit") == "?"
    page.screenshot(path=str(ARTIFACTS / "serve_refused.png"))
    page.close()


def test_draw_a_1_by_touch_on_a_phone_sized_page(browser, server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True,
                                  device_scale_factor=2)
    page = context.new_page()
    page.goto(server.url)
    box = page.locator("#pad").bounding_box()
    assert box["width"] <= 390
    cdp = context.new_cdp_session(page)
    x = box["x"] + box["width"] / 2
    ys = [box["y"] + box["height"] * (0.15 + 0.7 * i / 12) for i in range(13)]
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": ys[0]}]})
    for y in ys[1:]:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    shown(page, "1", "draw")
    page.screenshot(path=str(ARTIFACTS / "serve_phone.png"), full_page=True)
    context.close()
