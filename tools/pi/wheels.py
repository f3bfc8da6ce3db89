"""Install mnistkit and its backends for the emulated Pi from aarch64 wheels, with the host's pip.

Three folders go on the emulated Python's ``PYTHONPATH``:

- ``site-mnistkit``: mnistkit itself, a wheel built from the working tree (pure Python). Rebuilt
  only when a source file changed.
- ``site``: the base package's dependencies as the wheel's metadata declares them (markers evaluated
  for Linux aarch64 / CPython 3.11), plus onnxruntime from the ``onnx`` extra. Resolving them with
  ``--only-binary=:all:`` for aarch64 platforms is the proof that ``pip install mnistkit`` resolves
  on 64-bit Raspberry Pi OS; a requirement without an aarch64 wheel fails this step by name. The
  ``serve`` extra's packages go here too, so ``mnistkit serve`` can run on the emulated Pi.
- ``site-tflrt``: tflite-runtime 2.14 with numpy<2 (it crashes on numpy 2), for the matrix.

pip resolves with the host's environment markers for transitive dependencies; the first-level
requirements are evaluated for aarch64 here, so a marker that excludes aarch64 is honoured.
"""

from __future__ import annotations

import email
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from mnistkit.tools.pi.common import Stamp, StepError, cache_dir, checkout_root, log, run

# Bookworm has glibc 2.36: every manylinux tag up to 2.36 runs there.
PLATFORMS = ["manylinux2014_aarch64"] + [f"manylinux_2_{minor}_aarch64" for minor in range(17, 37)]
TARGET_FLAGS = [
    "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
    "--abi", "cp311", "--abi", "abi3", "--abi", "none",
    *[arg for plat in PLATFORMS for arg in ("--platform", plat)],
]
# Environment markers of the emulated Pi (64-bit Raspberry Pi OS, CPython 3.11).
AARCH64_ENV = {
    "platform_machine": "aarch64", "sys_platform": "linux", "os_name": "posix",
    "platform_system": "Linux", "python_version": "3.11", "python_full_version": "3.11.2",
    "implementation_name": "cpython", "platform_python_implementation": "CPython",
}
TFLRT_REQUIREMENTS = ["tflite-runtime==2.14.0", "numpy<2"]
SOURCE_DIRS = ("export", "runtime", "models", "tools")


def _pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]


def source_digest(root: Path | None = None) -> str:
    """sha256 over the files a mnistkit wheel is built from (paths and bytes); ``root``: the checkout."""
    root = root or checkout_root()
    h = hashlib.sha256()
    files = [root / "pyproject.toml", root / "README.md"]
    for sub in SOURCE_DIRS:
        files += [p for p in (root / sub).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for path in sorted(files):
        if path.is_file():
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def build_mnistkit_wheel(root: Path | None = None) -> Path:
    """Step ``wheel``: build mnistkit's wheel from a copy of the working tree (no build/ in the repo).

    Returns:
        The path of the wheel in the cache.

    Raises:
        StepError: the build failed.
    """
    step = "wheel"
    root = root or checkout_root()
    out = cache_dir() / "dist"
    digest = source_digest(root)
    stamp = Stamp(step, {"source_sha256": digest})
    if stamp.done():
        wheel = out / stamp.result().get("wheel", "")
        if wheel.is_file():
            return wheel
    log("building the mnistkit wheel (pip wheel --no-deps)")
    with tempfile.TemporaryDirectory(prefix="mnistkit-dist.") as tmp:
        built = build_wheel(root, Path(tmp))
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("mnistkit-*.whl"):
            old.unlink()
        wheel = out / built.name
        shutil.copy2(built, wheel)
    stamp.mark(wheel=wheel.name)
    return wheel


def build_wheel(root: Path, dist: Path, *, isolated: bool = True) -> Path:
    """Build mnistkit's wheel from a copy of the checkout at ``root`` into ``dist`` (no build/ in the checkout).

    Args:
        root: the source checkout.
        dist: folder for the wheel.
        isolated: use pip's build isolation (False: build with this environment's setuptools).

    Returns:
        The wheel's path.

    Raises:
        StepError: the build failed.
    """
    step = "wheel"
    with tempfile.TemporaryDirectory(prefix="mnistkit-src.") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        shutil.copy2(root / "pyproject.toml", src)
        if (root / "README.md").is_file():
            shutil.copy2(root / "README.md", src)
        else:  # the build would fail on `readme =`
            log("note: README.md is missing; building with an empty one")
            (src / "README.md").write_text("mnistkit\n")
        for sub in SOURCE_DIRS:
            shutil.copytree(root / sub, src / sub, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        flags = [] if isolated else ["--no-build-isolation"]
        run(step, _pip("wheel", "--no-deps", "-q", *flags, "-w", str(dist), str(src)), timeout=600)
    wheels = sorted(dist.glob("mnistkit-*.whl"))
    if len(wheels) != 1:
        raise StepError(step, f"expected one mnistkit wheel, found {[w.name for w in wheels]}")
    return wheels[0]


def wheel_requirements(wheel: Path, extras: tuple[str, ...] = ()) -> list[str]:
    """The wheel's ``Requires-Dist`` entries that apply on aarch64 Linux CPython 3.11.

    Args:
        wheel: A built wheel.
        extras: Extras whose requirements to include as well (e.g. ``("onnx",)``).

    Returns:
        Requirement strings without markers (e.g. ``"numpy<2.5,>=1.23"``).
    """
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(zf.read(name))
    out = []
    for line in meta.get_all("Requires-Dist") or []:
        req = Requirement(line)
        envs = [dict(AARCH64_ENV, extra=e) for e in ("", *extras)]
        if req.marker is None or any(req.marker.evaluate(env) for env in envs):
            req.marker = None
            out.append(str(req))
    return out


def _missing_package(message: str) -> str:
    """Name the requirement pip could not satisfy, from its error output."""
    m = re.search(r"(?:satisfies the requirement|distribution found for) (\S+)", message)
    return m.group(1) if m else ""


def install_site(step: str, name: str, requirements: list[str], dry_run: bool = False) -> Path:
    """Resolve ``requirements`` to aarch64 wheels and install them into ``cache/pi/<name>``.

    The resolution is recorded in ``<name>/RESOLVED.json`` (name, version, wheel file of each).
    With ``dry_run`` only the resolution is made and recorded (pip downloads, installs nothing).

    Raises:
        StepError: a requirement has no aarch64 CPython 3.11 wheel, or pip failed.
    """
    target = cache_dir() / name
    stamp = Stamp(step, {"requirements": requirements, "platforms": PLATFORMS, "compiled": True})
    if stamp.done() and (target / "RESOLVED.json").is_file():
        return target
    log(f"{step}: resolving and installing for aarch64: {' '.join(requirements)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        report = tmp / "pip-report.json"
        cmd = _pip("install", "--target", str(tmp / "site"), "--ignore-installed", "-q",
                   "--report", str(report), *(["--dry-run"] if dry_run else []), *TARGET_FLAGS, *requirements)
        try:
            run(step, cmd, timeout=1200)
        except StepError as exc:
            missing = _missing_package(exc.why)
            if missing:
                raise StepError(step, f"no aarch64 (manylinux, cp311) wheel for {missing}; "
                                      f"`pip install` cannot resolve on 64-bit Raspberry Pi OS ({exc.why})") from None
            raise
        resolved = [
            {"name": item["metadata"]["name"], "version": item["metadata"]["version"],
             "file": item["download_info"]["url"].rsplit("/", 1)[-1]}
            for item in json.loads(report.read_text())["install"]
        ]
        site = tmp / "site"
        site.mkdir(exist_ok=True)
        (site / "RESOLVED.json").write_text(json.dumps({"requirements": requirements, "resolved": resolved}, indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(site, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stamp.mark(resolved=resolved)
    return target


def install_mnistkit(wheel: Path) -> Path:
    """Step ``install-mnistkit``: install the built wheel (no deps) into ``site-mnistkit``."""
    step = "install-mnistkit"
    target = cache_dir() / "site-mnistkit"
    stamp = Stamp(step, {"wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(), "compiled": True})
    if stamp.done() and target.is_dir():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=".site-mnistkit.", dir=target.parent))
    try:
        run(step, _pip("install", "--no-deps", "-q", "--target", str(tmp / "site"),
                       *TARGET_FLAGS, str(wheel)), timeout=300)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp / "site", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stamp.mark()
    return target


def resolved(site: Path) -> list[dict]:
    """The resolution recorded for an installed site folder."""
    return json.loads((site / "RESOLVED.json").read_text())["resolved"]


def install_all(tflrt: bool = False) -> dict[str, Path]:
    """Build and install everything the emulated Pi needs; return the site folders by role.

    Args:
        tflrt: Also install tflite-runtime 2.14 + numpy<2 into ``site-tflrt`` (for the matrix).

    Returns:
        ``{"mnistkit": ..., "base": ..., "onnx": ..., ["tflrt": ...]}`` (base and onnx are one folder).
    """
    wheel = build_mnistkit_wheel()
    base_reqs = wheel_requirements(wheel)
    onnx_reqs = [r for r in wheel_requirements(wheel, extras=("onnx",)) if r not in base_reqs]
    if not onnx_reqs:
        raise StepError("resolve", "the mnistkit wheel declares no `onnx` extra (onnxruntime)")
    # `mnistkit serve` (the `serve` extra) must install on a Pi too: its packages go in the same folder.
    serve_reqs = [r for r in wheel_requirements(wheel, extras=("serve",)) if r not in base_reqs + onnx_reqs]
    # Prove the base package alone resolves for aarch64 (its own step, so a failure names it) ...
    install_site("resolve-base", "resolve-base", base_reqs, dry_run=True)
    # ... then the folder the checks use: base + onnxruntime + the serve extra.
    site = install_site("install-backends", "site", base_reqs + onnx_reqs + serve_reqs)
    sites = {"mnistkit": install_mnistkit(wheel), "base": site, "onnx": site}
    if tflrt:
        extra = [r for r in base_reqs if not re.match(r"(numpy|ai-edge-litert)\b", r, re.I)]
        sites["tflrt"] = install_site("install-tflrt", "site-tflrt", TFLRT_REQUIREMENTS + extra)
    return sites
