"""REPORT.md's `mnistkit serve` section comes from the load script's outputs, when they exist."""

from __future__ import annotations

from pathlib import Path


def test_serve_section_quotes_the_load_run_and_its_chart(tmp_path):
    from mnistkit.tools.report.build import serve_section

    rel = lambda p: p.relative_to(tmp_path)  # noqa: E731
    assert serve_section(tmp_path, rel) == []  # no load run: no section
    (tmp_path / "serve_load.md").write_text("| answered | errors |\n|---|---|\n| 10 of 10 | 0 |\n")
    parts = serve_section(tmp_path, rel)
    assert parts[0].startswith("## `mnistkit serve`") and "| 10 of 10 | 0 |" in parts[1] and len(parts) == 2
    (tmp_path / "serve_load.png").write_bytes(b"\x89PNG")
    assert serve_section(tmp_path, rel)[-1] == f"![server memory during the load run]({Path('serve_load.png')})"
