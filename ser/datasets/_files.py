"""Helpers shared by the corpus parsers: list audio files, report skips, build the clip frame."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from ..audio import AUDIO_EXTENSIONS
from ..errors import DatasetError

log = logging.getLogger(__name__)

COLUMNS = ["clip_id", "path", "label", "speaker"]


def _is_junk(path: Path) -> bool:
    """macOS resource forks (``._x.wav``, ``__MACOSX/``) and other hidden files that unzip leaves behind."""
    return path.name.startswith(".") or "__MACOSX" in path.parts


def _audio_files(root: Path) -> list[Path]:
    """Every audio file below ``root`` (recursively), sorted by path."""
    return sorted(p for p in Path(root).rglob("*")
                  if p.suffix.lower() in AUDIO_EXTENSIONS and not _is_junk(p) and p.is_file())


def _hint(corpus: str, root: Path, layout: str) -> str:
    return (f"expected the {corpus} layout {layout}; set data.dir in params.yaml to the folder "
            f"that holds the corpus (now {Path(root).resolve()})")


def _require_dir(root: Path, corpus: str, layout: str) -> Path:
    """Raise DatasetError when the corpus folder is missing; return it otherwise."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{corpus} folder {root} does not exist: {_hint(corpus, root, layout)}")
    return root


def _report_skipped(skipped: list[Path], corpus: str, layout: str) -> None:
    if skipped:
        shown = ", ".join(p.name for p in skipped[:5])
        log.warning("%s: skipped %d audio file(s) not named like %s (e.g. %s)",
                    corpus, len(skipped), layout, shown)


def _scan(root: Path, corpus: str, layout: str, parse: Callable[[Path], dict | None]) -> pd.DataFrame:
    """The common parser loop: ``parse`` turns one audio path into a row, or None to skip it."""
    root = _require_dir(root, corpus, layout)
    rows, skipped = [], []
    for path in _audio_files(root):
        row = parse(path)
        if row is None:
            skipped.append(path)
        else:
            rows.append({"clip_id": path.stem, "path": str(path.resolve()), **row})
    _report_skipped(skipped, corpus, layout)
    if not rows and skipped:
        raise DatasetError(f"none of the {len(skipped)} audio files in {root} is named like a {corpus} clip: "
                           + _hint(corpus, root, layout))
    return _frame(rows, corpus, root, layout)


def _frame(rows: Iterable[dict] | pd.DataFrame, corpus: str, root: Path, layout: str) -> pd.DataFrame:
    """The clip table, sorted by clip_id; raises DatasetError when ``rows`` is empty.

    Copies of the same clip (same clip_id, e.g. a corpus unpacked twice into nested folders)
    are kept once, the copy with the shortest path.
    """
    frame = pd.DataFrame(rows if isinstance(rows, pd.DataFrame) else list(rows))
    if frame.empty:
        raise DatasetError(f"no {corpus} clips found in {root}: {_hint(corpus, root, layout)}")
    depth = frame["path"].map(lambda p: len(Path(p).parts))
    frame = frame.assign(_depth=depth).sort_values(["clip_id", "_depth", "path"], ignore_index=True)
    frame = frame.drop(columns="_depth")
    copies = frame["clip_id"].duplicated()
    if copies.any():
        log.warning("%s: %d file(s) are further copies of clips already listed (same name in another "
                    "folder), using one copy of each", corpus, int(copies.sum()))
        frame = frame.loc[~copies].reset_index(drop=True)
    extras = [c for c in frame.columns if c not in COLUMNS]
    return frame[COLUMNS + extras]

