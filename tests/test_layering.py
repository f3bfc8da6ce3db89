"""The package layering, read from the source: which mnistkit package may import which.

    tools  -> export, models, runtime   (everything a person runs)
    export -> models, runtime
    models -> runtime                    (only for the shared typed errors)
    runtime -> nothing else of the project (it ships alone to devices)

Every ``import`` / ``from ... import`` counts, at module level or inside a function (a lazy import
is still a dependency). tools/pi/probe.py runs inside bare interpreters and may import only the
runtime.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("runtime", "models", "export", "tools")
ALLOWED: dict[str, set[str]] = {
    "runtime": {"runtime"},
    "models": {"models", "runtime"},
    "export": {"export", "models", "runtime"},
    "tools": {"tools", "export", "models", "runtime"},
}


def project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, package) of every import of a ``mnistkit.<package>`` module in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] if node.module != "mnistkit" else [f"mnistkit.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            pytest.fail(f"{path.relative_to(ROOT)}:{node.lineno} uses a relative import; import mnistkit.<package>")
        found += [(node.lineno, n.split(".")[1]) for n in names if n.startswith("mnistkit.")]
    return found


def violations(package: str) -> list[str]:
    return [f"{p.relative_to(ROOT)}:{line} imports mnistkit.{target}"
            for p in sorted((ROOT / package).rglob("*.py"))
            for line, target in project_imports(p) if target not in ALLOWED[package]]


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_follow_the_layering(package):
    assert not violations(package)


def test_the_checker_sees_lazy_and_from_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("import os\nfrom mnistkit import export\n\ndef f():\n    import mnistkit.tools.cli as c\n"
                   "    from mnistkit.runtime.errors import ModelError\n")
    assert project_imports(src) == [(2, "export"), (5, "tools"), (6, "runtime")]


def test_pi_probe_imports_only_the_runtime():
    probe = ROOT / "tools" / "pi" / "probe.py"
    assert {target for _, target in project_imports(probe)} == {"runtime"}
