"""The wheel holds everything the installed CLI can import.

Builds mnistkit's wheel from the sources (as ``pip install .`` would), installs it into a bare
folder, and imports every module of the four packages from there, in a child interpreter where the
editable install of this checkout is switched off, so a module missing from pyproject's package list
fails here instead of on a user's machine.
"""

from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("export", "runtime", "models", "tools")

# Runs in the child: drop the editable install's finders, import every module from the installed folder.
_IMPORT_ALL = r"""
import importlib, json, sys
target, names = sys.argv[1], json.loads(sys.argv[2])
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
sys.path_hooks[:] = [h for h in sys.path_hooks if "editable" not in getattr(h, "__module__", "").lower()
                     and "editable" not in repr(h).lower()]
sys.path[:] = [target] + [p for p in sys.path if "__editable__" not in p]
sys.path_importer_cache.clear()
bad = {}
for name in names:
    try:
        mod = importlib.import_module(name)
        if not str(getattr(mod, "__file__", "")).startswith(target):
            bad[name] = f"imported from {mod.__file__}, not from the installed wheel"
    except Exception as exc:
        bad[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(bad))
"""


def source_modules() -> list[str]:
    """Every importable module of the four packages, as ``mnistkit.<package>....`` names."""
    names = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "__pycache__" in parts or parts[-1] == "__main__":
                continue
            names.append(".".join(("mnistkit", *(parts[:-1] if parts[-1] == "__init__" else parts))))
    return names


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    import importlib.util

    from mnistkit.tools.pi.wheels import build_wheel

    # This environment's setuptools when it has one (fast, offline); else pip's isolated build.
    return build_wheel(ROOT, tmp_path_factory.mktemp("dist"), isolated=importlib.util.find_spec("setuptools") is None)


def test_wheel_holds_every_module_assets_and_the_console_script(wheel):
    with zipfile.ZipFile(wheel) as zf:
        files = set(zf.namelist())
        entry_points = next(n for n in files if n.endswith(".dist-info/entry_points.txt"))
        scripts = configparser.ConfigParser()
        scripts.read_string(zf.read(entry_points).decode())
    expected = {f"mnistkit/{p.relative_to(ROOT)}" for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
                if "__pycache__" not in p.parts}
    assert not sorted(expected - files)
    # Package data: every other file of the packages (bundled model and samples, the serve page), but
    # the pretrained Keras zoo, which stays in the checkout (models/pretrained, for `make exports`).
    data = {f"mnistkit/{p.relative_to(ROOT)}" for pkg in PACKAGES for p in (ROOT / pkg).rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
            and "pretrained" not in p.parts}
    assert "mnistkit/runtime/assets/default.tflite" in data
    assert not sorted(data - files)
    assert scripts["console_scripts"]["mnistkit"] == "mnistkit.tools.cli:main"


def test_every_module_imports_from_the_installed_wheel(wheel, tmp_path):
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(target)  # a wheel is a zip laid out as site-packages; pure Python, nothing to compile
    names = source_modules()
    assert "mnistkit.tools.cli.export" in names and "mnistkit.export.pipeline" in names
    import json

    proc = subprocess.run([sys.executable, "-c", _IMPORT_ALL, str(target), json.dumps(names)],
                          capture_output=True, text=True, timeout=300, env={"TF_CPP_MIN_LOG_LEVEL": "3",
                                                                           "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {}
