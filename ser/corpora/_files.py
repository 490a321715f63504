"""Helpers shared by the corpus parsers: list audio files, report skips, build the clip frame."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from ser.corpora.audio import audio_files
from ser.errors import DatasetError

log = logging.getLogger(__name__)

COLUMNS = ["clip_id", "path", "label", "speaker"]


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
        log.warning("%s: skipped %d audio file(s) not named like %s (e.g. %s); listed in data/excluded.csv",
                    corpus, len(skipped), layout, shown)


def with_skipped(frame: pd.DataFrame, skipped: Iterable[Path | str], reason: str | None = None) -> pd.DataFrame:
    """``frame`` plus one row per file the scan could not use, with ``reason`` (or per file, when
    ``skipped`` holds (path, reason) pairs): prepare moves every row with a reason to
    data/excluded.csv, so nothing is left out without a trace."""
    pairs = [(item, reason) if reason is not None else item for item in skipped]
    rows = [{"clip_id": Path(p).stem, "path": str(p), "label": "", "speaker": "", "reason": why} for p, why in pairs]
    return pd.concat([frame, pd.DataFrame(rows, columns=[*COLUMNS, "reason"])], ignore_index=True) if rows else frame


def _scan(root: Path, corpus: str, layout: str, parse: Callable[[Path], dict | str | None]) -> pd.DataFrame:
    """The common parser loop: ``parse`` turns one audio path into a row, or None to skip it as
    misnamed, or a string: the reason to skip it."""
    root = _require_dir(root, corpus, layout)
    rows, skipped = [], []
    misnamed = f"not named like a {corpus} clip ({layout})"
    for path in audio_files(root):
        row = parse(path)
        if isinstance(row, dict):
            rows.append({"clip_id": path.stem, "path": str(path.resolve()), **row})
        else:
            skipped.append((path, row or misnamed))
    _report_skipped([p for p, why in skipped if why == misnamed], corpus, layout)
    if not rows and skipped:
        raise DatasetError(f"none of the {len(skipped)} audio files in {root} is a usable {corpus} clip "
                           f"(e.g. {skipped[0][0].name}: {skipped[0][1]}): " + _hint(corpus, root, layout))
    return with_skipped(_frame(rows, corpus, root, layout), skipped)


def _frame(rows: Iterable[dict] | pd.DataFrame, corpus: str, root: Path, layout: str) -> pd.DataFrame:
    """The clip table, sorted by clip_id, with a ``reason`` column ("" = usable); raises
    DatasetError when ``rows`` is empty.

    Copies of the same clip (same clip_id, e.g. a corpus unpacked twice into nested folders)
    are used once, the copy with the shortest path; the others get a reason.
    """
    frame = pd.DataFrame(rows if isinstance(rows, pd.DataFrame) else list(rows))
    if frame.empty:
        raise DatasetError(f"no {corpus} clips found in {root}: {_hint(corpus, root, layout)}")
    depth = frame["path"].map(lambda p: len(Path(p).parts))
    frame = frame.assign(_depth=depth).sort_values(["clip_id", "_depth", "path"], ignore_index=True)
    frame = frame.drop(columns="_depth")
    copies = frame["clip_id"].duplicated()
    frame["reason"] = ""
    if copies.any():
        log.warning("%s: %d file(s) are further copies of clips already listed (same name in another "
                    "folder), using one copy of each", corpus, int(copies.sum()))
        kept = frame.loc[~copies].set_index("clip_id")["path"]
        frame.loc[copies, "reason"] = [f"further copy of clip {c} (same name in another folder; {kept[c]} is used)"
                                       for c in frame.loc[copies, "clip_id"]]
    extras = [c for c in frame.columns if c not in COLUMNS]
    return frame[COLUMNS + extras]

