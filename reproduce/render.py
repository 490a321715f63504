"""The results tables of the README and the docs, rendered from the committed records of reproduce/.

A page holds a table between ``<!-- results:NAME (python -m reproduce --readme) -->`` and
``<!-- /results:NAME -->``; ``python -m reproduce --readme`` rewrites every such block in README.md and docs/, and
a test checks that each block equals its rendering.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from . import grid
from .table import load_rows, readme_table, replace_table, table_in
from .workspace import ROOT

TABLES: dict[str, Callable[[], str]] = {
    "ravdess": lambda: readme_table(load_rows()),
    "corpora": lambda: grid.grid_tables(grid.load_grid()),
    "headline": lambda: grid.headline_table(grid.load_grid()),
    "crosscorpus": lambda: grid.matrix_tables(grid.load_grid(grid.CROSS_FILE)),
}
BLOCK = re.compile(r"<!-- results:(\w+) \(python -m reproduce --readme\) -->")


def pages(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown page of docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def blocks(text: str) -> list[str]:
    """The names of the results blocks ``text`` holds, in order."""
    return BLOCK.findall(text)


def rendered(text: str) -> str:
    """``text`` with each of its results blocks rendered from the committed records."""
    for name in blocks(text):
        if name not in TABLES:
            raise ValueError(f"results:{name}: no such table; known: {', '.join(TABLES)}")
        text = replace_table(text, name, TABLES[name]())
    return text


def stale(path: Path) -> list[str]:
    """The blocks of ``path`` that differ from their rendering."""
    text = path.read_text()
    return [name for name in blocks(text) if table_in(text, name) != TABLES[name]()]


def render_all(root: Path = ROOT) -> list[Path]:
    """Rewrite every page whose blocks are stale; the pages rewritten."""
    changed = []
    for path in pages(root):
        text = path.read_text()
        if (new := rendered(text)) != text:
            path.write_text(new)
            changed.append(path)
    return changed
