"""The documentation builds as a static site with MkDocs in strict mode: every page is in the
navigation and every link between pages, anchors included, resolves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mkdocs_build_strict(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    pages = {p.parent.name for p in (tmp_path / "site").glob("*/index.html")}
    assert {
        "getting-started",
        "concepts",
        "configuration",
        "grafana",
        "migration",
        "troubleshooting",
    } <= pages


def test_every_doc_page_is_in_the_navigation():
    import yaml

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    listed = {page for item in nav for page in item.values()}
    on_disk = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert listed == on_disk
