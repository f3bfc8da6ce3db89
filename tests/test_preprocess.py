"""Real-image preprocessing (mnistkit.runtime.preprocess / imageio): fast, no TensorFlow."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from mnistkit.runtime.errors import ImageError
from mnistkit.runtime.imageio import MAX_PIXELS, read_gray
from mnistkit.runtime.preprocess import is_mnist_style, prepare

SAMPLES = Path(__file__).resolve().parents[1] / "runtime" / "assets" / "samples"


def corr(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two 28x28 images, at the best of the shifts by up to one pixel.

    MNIST centres by rounding the centre of mass to a whole pixel, so two near-identical digits
    can legitimately land one pixel apart.
    """
    a, b = np.asarray(a, np.float64), np.pad(np.asarray(b, np.float64), 1)
    return max(
        float(np.corrcoef(a.ravel(), b[1 + dy : 29 + dy, 1 + dx : 29 + dx].ravel())[0, 1])
        for dy in (-1, 0, 1) for dx in (-1, 0, 1)
    )


def photo(digit: np.ndarray, size=(240, 300), at=(30, 150), height=84, seed=0) -> np.ndarray:
    """An MNIST digit as dark ink on light, noisy, unevenly lit paper: float (H, W) in [0, 1]."""
    rng = np.random.default_rng(seed)
    ink = np.asarray(Image.fromarray(digit).resize((height, height), Image.Resampling.BICUBIC)) / 255.0
    w, h = size
    paper = 0.92 - 0.25 * np.linspace(0, 1, w)[None, :] * np.ones((h, 1))  # darker to the right
    top, left = at
    paper[top : top + height, left : left + height] -= 0.6 * ink
    return np.clip(paper + rng.normal(0, 0.03, paper.shape), 0, 1).astype(np.float32)


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def seven(mnist) -> np.ndarray:
    return mnist.x_test[0]  # a 7


@pytest.fixture(scope="module")
def paper_rgb(seven) -> np.ndarray:
    """A photo of the 7 as RGB uint8 with a warm colour cast."""
    g = photo(seven)
    return (np.stack([g, g * 0.97, g * 0.85], axis=-1) * 255).astype(np.uint8)


def check_mnist_like(x: np.ndarray) -> None:
    assert x.shape == (28, 28) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.99
    ys, xs = np.nonzero(x > 0.05)
    assert np.ptp(ys) + 1 <= 20 and np.ptp(xs) + 1 <= 20
    assert max(np.ptp(ys), np.ptp(xs)) + 1 >= 19  # fitted to the 20x20 box
    total = x.sum()
    cy, cx = (x.sum(1) @ np.arange(28)) / total, (x.sum(0) @ np.arange(28)) / total
    assert abs(cy - 14) <= 0.75 and abs(cx - 14) <= 0.75


# --- formats ------------------------------------------------------------------------------------


def _formats(rgb: np.ndarray) -> dict[str, bytes]:
    im = Image.fromarray(rgb, "RGB")
    gray = im.convert("L")
    ink_alpha = Image.fromarray(255 - np.asarray(gray))  # ink opacity, transparent paper
    rgba_dark = Image.merge("RGBA", (*Image.new("RGB", im.size, (20, 20, 60)).split(), ink_alpha))
    rgba_light = Image.merge("RGBA", (*Image.new("RGB", im.size, (250, 250, 250)).split(), ink_alpha))
    g16 = Image.fromarray((np.asarray(gray).astype(np.uint16) * 257))
    palette_t = gray.convert("P")
    palette_t.info["transparency"] = 255
    first, second = im.quantize(64), Image.new("RGB", im.size, (255, 255, 255)).quantize(4)
    gif = io.BytesIO()
    first.save(gif, "GIF", save_all=True, append_images=[second])
    return {
        "png-L": encode(gray, "PNG"),
        "png-RGB": encode(im, "PNG"),
        "png-RGBA-opaque": encode(im.convert("RGBA"), "PNG"),
        "png-RGBA-dark-ink-transparent": encode(rgba_dark, "PNG"),
        "png-RGBA-light-ink-transparent": encode(rgba_light, "PNG"),
        "png-LA": encode(gray.convert("LA"), "PNG"),
        "png-P": encode(im.quantize(64), "PNG"),
        "png-P-transparency": encode(palette_t, "PNG"),
        "png-16bit": encode(g16, "PNG"),
        "png-1bit": encode(gray.point(lambda v: 255 if v > 140 else 0).convert("1"), "PNG"),
        "jpeg-RGB": encode(im, "JPEG", quality=70),
        "jpeg-L": encode(gray, "JPEG", quality=40),
        "bmp-RGB": encode(im, "BMP"),
        "bmp-L": encode(gray, "BMP"),
        "gif-first-frame": gif.getvalue(),
        "tiff": encode(im, "TIFF"),
    }


def test_every_format_and_mode_decodes_to_the_same_digit(paper_rgb, tmp_path):
    formats = _formats(paper_rgb)
    assert Image.open(io.BytesIO(formats["png-16bit"])).mode.startswith("I;16")
    assert Image.open(io.BytesIO(formats["gif-first-frame"])).n_frames == 2
    reference = prepare(formats["png-L"])
    check_mnist_like(reference)
    for name, data in formats.items():
        path = tmp_path / f"digit-{name}.img"
        path.write_bytes(data)
        for source in (path, str(path), data, Image.open(io.BytesIO(data))):
            out = prepare(source)
            check_mnist_like(out)
            assert corr(out, reference) > 0.9, name


def test_exif_orientation_is_applied(paper_rgb):
    upright = prepare(encode(Image.fromarray(paper_rgb), "JPEG", quality=90))
    sideways = Image.fromarray(np.rot90(paper_rgb, 1).copy())  # stored rotated, as phones do
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    out = prepare(encode(sideways, "JPEG", quality=90, exif=exif.tobytes()))
    assert corr(out, upright) > 0.95
    assert corr(prepare(encode(sideways, "JPEG", quality=90)), upright) < 0.5  # without the tag: sideways


def test_sixteen_bit_keeps_its_precision():
    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    gray = read_gray(encode(Image.fromarray(ramp), "PNG"))
    assert len(np.unique(gray)) > 4000  # 8-bit would leave at most 256 levels
    assert gray.min() == 0.0 and gray.max() == 1.0


def test_numpy_inputs_of_every_kind(paper_rgb):
    reference = prepare(paper_rgb)
    gray8 = np.asarray(Image.fromarray(paper_rgb).convert("L"))
    alpha = np.full(paper_rgb.shape[:2] + (1,), 255, np.uint8)
    cases = {
        "gray uint8": gray8,
        "gray (H,W,1)": gray8[..., None],
        "gray uint16": gray8.astype(np.uint16) * 257,
        "gray float 0-1": gray8 / 255.0,
        "gray float 0-255": gray8.astype(np.float64),
        "rgba uint8": np.concatenate([paper_rgb, alpha], axis=-1),
        "rgb float32": paper_rgb.astype(np.float32) / 255,
    }
    for name, arr in cases.items():
        out = prepare(arr)
        check_mnist_like(out)
        assert corr(out, reference) > 0.95, name


# --- geometry and polarity ----------------------------------------------------------------------


def test_pasted_mnist_digits_come_back_close_to_the_original(mnist):
    for i, (index, at, height) in enumerate([(0, (10, 20), 60), (1, (150, 170), 84), (2, (200, 40), 90),
                                             (3, (20, 180), 100), (4, (120, 10), 70)]):
        digit = mnist.x_test[index]
        out = prepare(photo(digit, size=(320, 300), at=at, height=height, seed=i))
        check_mnist_like(out)
        assert corr(out, digit / 255.0) > 0.8, index


def test_dark_on_light_and_light_on_dark_give_the_same_result(seven):
    dark_on_light = photo(seven)
    light_on_dark = 1.0 - dark_on_light
    a, b = prepare(dark_on_light), prepare(light_on_dark)
    assert np.abs(a - b).max() < 0.1 and corr(a, b) > 0.99


def test_inverted_mnist_digit_is_recentred_and_reinverted(mnist):
    for digit in mnist.x_test[:20]:
        out = prepare(255 - digit)
        assert corr(out, digit / 255.0) > 0.6
        assert not is_mnist_style(255 - digit)


def test_digit_off_centre_and_tall_keeps_its_aspect_ratio():
    img = np.ones((200, 300), np.float32)
    img[20:180, 250:270] = 0.0  # a tall bar at the right edge: a "1"
    out = prepare(img)
    check_mnist_like(out)
    ys, xs = np.nonzero(out > 0.5)
    assert np.ptp(ys) + 1 >= 19 and np.ptp(xs) + 1 <= 4


def test_dirt_far_from_the_digit_is_removed(seven):
    clean = photo(seven)
    dirty = clean.copy()
    for y, x in [(10, 10), (280, 20), (270, 220), (15, 230)]:
        dirty[y : y + 3, x : x + 3] = 0.1
    assert corr(prepare(dirty), prepare(clean)) > 0.98


# --- MNIST-style pass-through ---------------------------------------------------------------------


def test_mnist_arrays_pass_through_unchanged(mnist):
    x = mnist.x_test
    assert all(is_mnist_style(a) for a in x[:2000])  # all 70,000 pass; 2,000 keep the test fast
    for a in x[:200]:
        np.testing.assert_array_equal(prepare(a), a.astype(np.float32) / 255.0)
        f = a.astype(np.float32) / 255.0
        np.testing.assert_array_equal(prepare(f), f)


def test_is_mnist_style_rejects_other_arrays(mnist):
    a = mnist.x_test[0]
    shifted = np.zeros_like(a)
    shifted[:, :20] = a[:, 8:]  # off-centre by 8 pixels
    assert not is_mnist_style(255 - a)
    assert not is_mnist_style(shifted)
    assert not is_mnist_style(np.zeros((28, 28), np.uint8))
    assert not is_mnist_style(np.pad(a, 2))
    assert not is_mnist_style([[0]])


# --- bad input ----------------------------------------------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def _bad_inputs(tmp_path: Path, paper_rgb: np.ndarray) -> dict[str, tuple[object, str]]:
    png = encode(Image.fromarray(paper_rgb), "PNG")
    jpg = encode(Image.fromarray(paper_rgb), "JPEG")
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(jpg[: len(jpg) // 2])
    white = encode(Image.new("L", (120, 90), 255), "PNG")
    black = encode(Image.new("RGB", (120, 90), (0, 0, 0)), "JPEG")
    big = Image.new("1", (7000, 6000))  # 42 MP, compresses to a few KB
    return {
        "missing file": (tmp_path / "nope.png", "no such file"),
        "directory": (tmp_path, "is a directory"),
        "not an image": (text, "not an image"),
        "empty bytes": (b"", "empty"),
        "truncated jpeg": (truncated, "truncated"),
        "truncated png": (png[: len(png) - 200], "truncated"),
        "over the pixel cap": (encode(big, "PNG"), "megapixel limit"),
        "pillow bomb error": (_png_header_only(20_000, 20_000), "megapixel limit"),
        "huge array": (np.broadcast_to(np.uint8(0), (7000, 7000)), "megapixel limit"),
        "all white": (white, "no digit found"),
        "all black": (black, "no digit found"),
        "flat grey array": (np.full((50, 60), 0.5, np.float32), "no digit found"),
        "empty array": (np.zeros((0, 10), np.uint8), "empty"),
        "batch array": (np.zeros((2, 28, 28, 5), np.uint8), "not one image"),
        "NaN array": (np.full((30, 30), np.nan), "NaN"),
        "negative array": (np.full((30, 30), -1.0), "negative"),
        "wrong type": (12345, "cannot read an image"),
    }


def test_bad_input_raises_one_line_image_error(tmp_path, paper_rgb):
    for name, (source, words) in _bad_inputs(tmp_path, paper_rgb).items():
        with pytest.raises(ImageError) as info:
            prepare(source)
        message = str(info.value)
        assert words in message, (name, message)
        assert "\n" not in message and ";" in message, (name, message)  # "...; what to do"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_decompression_bomb_warning_range_is_refused(tmp_path):
    # 100 MP: above Pillow's warning threshold (89 MP), below its error threshold.
    with pytest.raises(ImageError, match="megapixel limit|decompression bomb"):
        prepare(_png_header_only(10_000, 10_000))
    assert MAX_PIXELS == 40_000_000


# --- packaging and cost -------------------------------------------------------------------------


def test_pillow_is_imported_only_for_files_and_bytes():
    code = (
        "import sys, numpy as np\n"
        "from mnistkit.runtime.preprocess import prepare\n"
        "a = np.zeros((28, 28), np.uint8); a[6:22, 12:16] = 255\n"
        "prepare(a); prepare(255 - a); prepare(np.pad(255 - a, 40, constant_values=255))\n"
        "assert 'PIL' not in sys.modules, 'Pillow imported for arrays'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_bundled_samples_are_small_labelled_and_readable():
    files = sorted(p for p in SAMPLES.iterdir() if p.is_file())
    assert 10 <= len(files) <= 14
    assert sum(p.stat().st_size for p in files) < 100 * 1024
    assert {int(p.name[0]) for p in files} == set(range(10))
    for path in files:
        check_mnist_like(prepare(path))


def test_make_samples_writes_labelled_photo_like_images(tmp_path, mnist_dir):
    from mnistkit.tools.scripts import make_samples

    if not make_samples.find_fonts():
        pytest.skip("no TrueType fonts on this machine")
    out = tmp_path / "photos"
    assert make_samples.main([str(out), "--count", "12", "--data-dir", str(mnist_dir)]) == 0
    files = sorted(out.iterdir())
    assert len(files) == 12
    assert [int(p.name[0]) for p in files] == sorted(i % 10 for i in range(12))
    for path in files:
        check_mnist_like(prepare(path))
    assert make_samples.main([str(out), "--count", "1", "--data-dir", str(mnist_dir)]) == 1  # not empty


def test_measure_photos_compares_preprocessing_with_plain_resizing(capsys):
    pytest.importorskip("ai_edge_litert")
    from mnistkit.tools.scripts import measure_photos

    model = SAMPLES.parent / "default.tflite"
    if not model.is_file():
        pytest.skip("no bundled default model yet")
    result = measure_photos.measure(model, SAMPLES)
    rows = result["accuracy"]
    assert rows["overall"]["n"] == len(list(SAMPLES.iterdir())) and not result["refused"]
    assert {"source printed", "source handwritten", "format jpeg-RGB", "format png-L"} <= set(rows)
    assert rows["overall"]["prepare"] > rows["overall"]["resize"] + 0.3
    assert measure_photos.main([str(model), str(SAMPLES / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err
