"""Generate a labelled, photo-like set of digit images to test real-image preprocessing.

    python -m mnistkit.tools.scripts.make_samples OUT_DIR [--count 500] [--seed 0] [--data-dir MNIST_DIR]
    python -m mnistkit.tools.scripts.make_samples --bundle runtime/assets/samples   # the bundled samples

Each image is one digit, dark ink on light paper (10% light on dark), drawn either with a TrueType
font found on this machine (/usr/share/fonts, matplotlib's fonts) or from an MNIST *test* digit
pasted as ink. Then: random size and off-centre position, slight rotation, paper tone and colour
cast, uneven lighting (linear gradient, vignette), blur, sensor noise, dirt specks, and one of
several file formats (8-bit and 16-bit PNG, RGB/RGBA/palette PNG, JPEG at various qualities, BMP,
palette GIF). The label and source are in the file name: ``<label>_<source>_<index>.<ext>``,
e.g. ``7_font-serif_003.png`` or ``2_mnist_101.jpg``. Needs Pillow and numpy only.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnistkit.models.artifacts import write_bytes_atomic
from mnistkit.models.data import load_mnist
from mnistkit.runtime.errors import MnistkitError, OutputExistsError, UsageError
from mnistkit.runtime.guard import script_guarded

# Font file name pattern -> source category. Fonts that match none are not used (symbol/math fonts).
FONT_RULES: tuple[tuple[str, str], ...] = (
    (r"cmmi|cmsy|cmex|STIXSiz|STIXNonUni|LastResort|Symbol|Emoji", ""),
    (r"ExtraLight|Thin", "font-light"),
    (r"Bol|cmb10|Black|Heavy", "font-bold"),
    (r"Mono|cmtt|Courier", "font-mono"),
    (r"Serif|cmr10|cmti10|STIXGeneral|MathTeX|Times", "font-serif"),
    (r"Sans|cmss10|Arial|Helvetica|Liberation", "font-sans"),
)
FORMATS: tuple[str, ...] = (
    "png-gray", "png-rgb", "png-rgba", "png-16bit", "png-palette", "jpeg", "jpeg-gray", "bmp", "gif",
)
MNIST_SHARE = 0.4  # fraction of images drawn from MNIST test digits
PENS = np.array([[0.05, 0.05, 0.1], [0.1, 0.15, 0.5], [0.2, 0.2, 0.2], [0.5, 0.1, 0.1]])  # RGB: black..red


def find_fonts() -> dict[str, list[Path]]:
    """TrueType fonts on this machine that have ordinary digits, grouped by source category."""
    dirs = [Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts"]
    spec = importlib.util.find_spec("matplotlib")  # its bundled fonts, without importing it
    if spec and spec.submodule_search_locations:
        dirs.append(Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "fonts" / "ttf")
    groups: dict[str, list[Path]] = {}
    seen: set[str] = set()
    for folder in dirs:
        for path in sorted(folder.rglob("*.[ot]tf")) if folder.is_dir() else []:
            category = next((cat for pattern, cat in FONT_RULES if re.search(pattern, path.name)), "")
            if category and path.name not in seen and _has_digits(path):
                seen.add(path.name)
                groups.setdefault(category, []).append(path)
    return groups


def _has_digits(font: Path) -> bool:
    """True if ``font`` draws ten distinct, non-empty digit glyphs (no missing-glyph boxes)."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        ft = ImageFont.truetype(str(font), 32)
    except OSError:
        return False
    shapes = set()
    for digit in "0123456789":
        im = Image.new("L", (48, 56), 0)
        ImageDraw.Draw(im).text((4, 4), digit, font=ft, fill=255)
        box = im.getbbox()
        if box is None:
            return False
        shapes.add(im.crop(box).tobytes())
    return len(shapes) == 10


@dataclass
class Style:
    """Random photographic conditions of one image."""

    width: int
    height: int
    digit_frac: float  # digit height / shorter canvas side
    angle: float
    paper: np.ndarray  # RGB in [0, 1]
    ink: np.ndarray  # RGB in [0, 1]
    gradient: float
    vignette: float
    blur: float  # Gaussian radius as a fraction of the digit height
    noise: float
    specks: int
    fmt: str
    jpeg_quality: int

    @classmethod
    def draw(cls, rng: np.random.Generator, easy: bool = False) -> "Style":
        """Draw random conditions (``easy``: milder, for the bundled samples)."""
        big = rng.random() < 0.06 and not easy
        if big:
            width = int(rng.integers(480, 800))
        else:
            width = int(rng.integers(90, 160) if easy else rng.integers(90, 360))
        height = int(np.clip(width * rng.uniform(0.7, 1.4), 64, 900))
        inverted = rng.random() < (0.0 if easy else 0.1)
        tint = np.ones(3)
        if rng.random() < 0.5:  # warm paper or light
            tint = np.array([1.0, rng.uniform(0.9, 1.0), rng.uniform(0.75, 1.0)])
        pen = PENS[rng.integers(len(PENS))]
        paper = rng.uniform(0.7, 1.0) * tint
        if rng.random() < 0.8:
            ink = pen * rng.uniform(0.3, 1.0)
        else:  # pencil grey
            ink = np.full(3, rng.uniform(0.0, 0.4))
        if inverted:  # chalk on a board, a light pen on dark paper
            paper, ink = np.full(3, rng.uniform(0.0, 0.3)) * tint, np.full(3, rng.uniform(0.7, 1.0))
        if easy:
            return cls(width, height, rng.uniform(0.45, 0.7), rng.uniform(-6, 6), paper, ink,
                       rng.uniform(0, 0.15), 0.0, rng.uniform(0, 0.02), rng.uniform(0, 0.02), 0,
                       str(rng.choice(["png-gray", "jpeg", "png-rgb"])), 85)
        return cls(
            width, height,
            digit_frac=rng.uniform(0.12, 0.4) if big else rng.uniform(0.25, 0.8),
            angle=rng.uniform(-12, 12),
            paper=paper, ink=ink,
            gradient=rng.uniform(0, 0.35),
            vignette=rng.uniform(0, 0.3) if rng.random() < 0.5 else 0.0,
            blur=rng.uniform(0, 0.04) if rng.random() < 0.6 else 0.0,
            noise=rng.uniform(0, 0.06),
            specks=int(rng.integers(1, 8)) if rng.random() < 0.3 else 0,
            fmt=str(rng.choice(FORMATS)),
            jpeg_quality=int(rng.integers(25, 92)),
        )


class Renderer:
    """Draws digits (font glyphs or MNIST test digits) as ink coverage maps in [0, 1]."""

    def __init__(self, fonts: dict[str, list[Path]], mnist_x: np.ndarray, mnist_y: np.ndarray):
        self.fonts = fonts
        self.by_label = [np.nonzero(mnist_y == d)[0] for d in range(10)]
        self.mnist_x = mnist_x
        self._glyphs: dict[tuple[Path, int], np.ndarray] = {}

    def glyph(self, font: Path, digit: int) -> np.ndarray:
        """Coverage map of ``digit`` drawn with ``font`` at 160 px, cropped to its ink."""
        from PIL import Image, ImageDraw, ImageFont

        key = (font, digit)
        if key not in self._glyphs:
            ft = ImageFont.truetype(str(font), 160)
            im = Image.new("L", (260, 300), 0)
            ImageDraw.Draw(im).text((40, 40), str(digit), font=ft, fill=255)
            self._glyphs[key] = np.asarray(im.crop(im.getbbox())).astype(np.float32) / 255.0
        return self._glyphs[key]

    def coverage(self, source: str, digit: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        """Coverage map of one digit from ``source`` ("mnist" or a font category) and a note."""
        if source == "mnist":
            index = int(rng.choice(self.by_label[digit]))
            a = self.mnist_x[index].astype(np.float32) / 255.0
            rows, cols = np.nonzero(a.any(axis=1))[0], np.nonzero(a.any(axis=0))[0]
            a = a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            return a, f"mnist-test-{index}"
        font = self.fonts[source][int(rng.integers(len(self.fonts[source])))]
        return self.glyph(font, digit), font.name


def render(renderer: Renderer, source: str, digit: int, style: Style, rng: np.random.Generator):
    """Render one photo-like image of ``digit`` and return it as a PIL image in the style's mode."""
    from PIL import Image, ImageFilter

    cov, _ = renderer.coverage(source, digit, rng)
    target_h = max(8, int(style.digit_frac * min(style.width, style.height)))
    scale = target_h / cov.shape[0]
    size = (max(2, round(cov.shape[1] * scale)), target_h)
    im = Image.fromarray((cov * 255).astype(np.uint8)).resize(size, Image.Resampling.BICUBIC)
    im = im.rotate(style.angle, resample=Image.Resampling.BICUBIC, expand=True)
    if im.width > style.width or im.height > style.height:
        im.thumbnail((style.width, style.height))
    cov = np.asarray(im).astype(np.float32) / 255.0
    if source == "mnist" and rng.random() < 0.5:  # a sharper pen than the blurry upscale
        cov = np.clip((cov - 0.25) / 0.5, 0, 1)
    h, w = style.height, style.width
    top = int(rng.integers(0, h - cov.shape[0] + 1))
    left = int(rng.integers(0, w - cov.shape[1] + 1))
    alpha = np.zeros((h, w), np.float32)
    alpha[top : top + cov.shape[0], left : left + cov.shape[1]] = cov
    for _ in range(style.specks):  # dirt: small dark dots away from nothing in particular
        r, y, x = rng.uniform(0.8, 3.0), rng.integers(h), rng.integers(w)
        yy, xx = np.ogrid[:h, :w]
        alpha = np.maximum(alpha, ((yy - y) ** 2 + (xx - x) ** 2 <= r * r) * rng.uniform(0.3, 0.9))

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    ramp = ((yy / h - 0.5) * np.sin(theta) + (xx / w - 0.5) * np.cos(theta)).astype(np.float32)
    radius2 = (yy / h - 0.5) ** 2 + (xx / w - 0.5) ** 2
    light = 1.0 + style.gradient * ramp * 2 - style.vignette * radius2 * 2
    light = np.clip(light, 0.3, 1.3)[..., None]

    if style.fmt == "png-rgba" and rng.random() < 0.5:  # ink on a transparent sheet
        rgb = np.broadcast_to(style.ink, (h, w, 3))
        img = np.concatenate([rgb, alpha[..., None]], axis=2)
        return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8), "RGBA")
    img = style.paper * (1 - alpha[..., None]) + style.ink * alpha[..., None]
    img = np.clip(img * light, 0, 1)
    pil = Image.fromarray((img * 255).astype(np.uint8), "RGB")
    if style.blur:
        pil = pil.filter(ImageFilter.GaussianBlur(style.blur * target_h))
    img = np.asarray(pil).astype(np.float32) / 255.0
    img = img + rng.normal(0, style.noise, img.shape[:2])[..., None].astype(np.float32)
    img = np.clip(img, 0, 1)
    gray = img @ np.array([0.299, 0.587, 0.114], np.float32)
    if style.fmt == "png-16bit":
        return Image.fromarray((gray * 65535).astype(np.uint16))
    if style.fmt in ("png-gray", "jpeg-gray") or (style.fmt == "bmp" and rng.random() < 0.5):
        return Image.fromarray((gray * 255).astype(np.uint8), "L")
    rgb = Image.fromarray((img * 255).astype(np.uint8), "RGB")
    if style.fmt == "png-rgba":
        return Image.merge("RGBA", (*rgb.split(), Image.new("L", rgb.size, 255)))
    if style.fmt in ("png-palette", "gif"):
        return rgb.quantize(colors=int(rng.choice([16, 64, 256])))
    return rgb


def encode(im, fmt: str, quality: int) -> tuple[bytes, str]:
    """Encode a PIL image for ``fmt``; returns (bytes, file extension)."""
    buf = io.BytesIO()
    if fmt.startswith("jpeg"):
        im.save(buf, "JPEG", quality=quality)
        return buf.getvalue(), "jpg"
    if fmt == "bmp":
        im.save(buf, "BMP")
        return buf.getvalue(), "bmp"
    if fmt == "gif":
        im.save(buf, "GIF")
        return buf.getvalue(), "gif"
    im.save(buf, "PNG", optimize=True)
    return buf.getvalue(), "png"


def sources_for(fonts: dict[str, list[Path]]) -> list[str]:
    """Source categories in a fixed order."""
    return sorted(fonts) + ["mnist"]


def make_set(out: Path, count: int, seed: int, renderer: Renderer) -> list[Path]:
    """Write ``count`` photo-like images into ``out`` (labels cycle 0-9, sources interleave)."""
    fonts = sorted(renderer.fonts)
    written = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        digit = i % 10
        source = "mnist" if rng.random() < MNIST_SHARE else fonts[(i // 10) % len(fonts)]
        style = Style.draw(rng)
        data, ext = encode(render(renderer, source, digit, style, rng), style.fmt, style.jpeg_quality)
        written.append(write_bytes_atomic(out / f"{digit}_{source}_{i:03d}.{ext}", data))
    return written


# The bundled samples: one per digit, plus two harder ones. (label, source, file stem)
BUNDLE: tuple[tuple[int, str, str], ...] = tuple(
    (d, "mnist" if d % 2 else "font-sans", f"{d}_{'handwritten' if d % 2 else 'printed'}") for d in range(10)
) + ((4, "mnist", "4_hard-gradient"), (8, "font-serif", "8_hard-small-noisy"))


BUNDLE_FORMATS = (
    "jpeg", "png-gray", "jpeg", "png-rgb", "jpeg", "gif", "jpeg", "png-palette", "jpeg", "png-rgba",
)


def make_bundle(out: Path, seed: int, renderer: Renderer) -> list[Path]:
    """Write the handful of small sample images bundled with the runtime into ``out``."""
    written = []
    for k, (digit, source, stem) in enumerate(BUNDLE):
        rng = np.random.default_rng([seed, 10_000 + k])
        style = Style.draw(rng, easy=True)
        style.fmt = BUNDLE_FORMATS[k % len(BUNDLE_FORMATS)]
        if style.fmt != "jpeg":
            style.noise = 0.0  # noise makes PNG/GIF files large
        if "hard" in stem:
            style.fmt, style.jpeg_quality = "jpeg", 60
            if "gradient" in stem:
                style.gradient, style.vignette, style.noise = 0.45, 0.3, 0.03
                style.paper, style.ink = np.array([0.85, 0.8, 0.65]), np.array([0.25, 0.25, 0.35])
            else:
                style.width, style.height, style.digit_frac = 220, 180, 0.22
                style.noise, style.specks = 0.06, 4
        data, ext = encode(render(renderer, source, digit, style, rng), style.fmt, style.jpeg_quality)
        written.append(write_bytes_atomic(out / f"{stem}.{ext}", data))
    return written


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m mnistkit.tools.scripts.make_samples", description=__doc__.split("\n")[0]
    )
    parser.add_argument("out", nargs="?", type=Path, help="folder for the test set (must be new or empty)")
    parser.add_argument("--count", type=int, default=500, help="number of images (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", help="MNIST folder (default: $MNISTKIT_DATA)")
    parser.add_argument("--bundle", type=Path, help="also write the bundled samples into this folder")
    args = parser.parse_args(argv)
    return script_guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    if args.out is None and args.bundle is None:
        raise UsageError("give an output folder, --bundle FOLDER, or both")
    if args.count < 1:
        raise UsageError("--count must be at least 1")
    if args.out is not None and args.out.exists() and any(args.out.iterdir()):
        raise OutputExistsError(f"{args.out} is not empty; choose a new folder or empty it")
    fonts = find_fonts()
    if not fonts:
        raise MnistkitError(
            "no usable TrueType fonts in /usr/share/fonts or matplotlib; install fonts-dejavu"
        )
    mnist = load_mnist(args.data_dir)
    renderer = Renderer(fonts, mnist.x_test, mnist.y_test)
    if args.out is not None:
        files = make_set(args.out, args.count, args.seed, renderer)
        print(f"wrote {len(files)} images to {args.out} (sources: {', '.join(sources_for(fonts))})")
    if args.bundle is not None:
        files = make_bundle(args.bundle, args.seed, renderer)
        total = sum(p.stat().st_size for p in files)
        print(f"wrote {len(files)} samples ({total / 1024:.0f} KB) to {args.bundle}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
