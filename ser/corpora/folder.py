"""A user's own recordings, described by a CSV or by folder names.

- With ``data.csv``: columns ``path,label[,speaker]`` (or the alternative header ``file_path,emotion_code``);
  relative paths resolve against the CSV's folder and any further columns are kept as extras.
- Without it, a ``data.csv`` at the top of ``data.dir`` is that CSV (said in the log);
- otherwise one sub-folder per label below ``data.dir``, ``<root>/<label>/**/*.wav``.

Labels are canonicalised with :func:`ser.corpora.emotions.canonical` (other labels pass through as written).
Listed files that are missing stay in the table (with a warning): the generic clip reader excludes them.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ser.corpora._files import _frame, _scan, with_skipped
from ser.corpora.emotions import NO_SPEAKER, canonical
from ser.corpora.registry import require_root
from ser.errors import DatasetError

if TYPE_CHECKING:
    from ser.config import Params

log = logging.getLogger(__name__)

UNKNOWN = NO_SPEAKER
FOLDER_LAYOUT = "<root>/<label>/<file>.wav (one sub-folder per label)"
CSV_LAYOUT = "columns path,label[,speaker] (or file_path,emotion_code)"
ALTERNATIVES = {"file_path": "path", "emotion_code": "label"}
REQUIRED = ["path", "label"]
STANDARD = ["clip_id", "path", "label", "speaker"]


def check(params: Params, need_data: bool) -> None:
    """``data.csv`` or ``data.dir`` is needed; with ``need_data`` the one read must exist."""
    data = params.data
    if not (data.csv or data.dir):
        raise ValueError("dataset 'folder' needs data.csv (path,label[,speaker]) or data.dir "
                         "(one sub-folder per label)")
    if need_data and data.csv and not Path(data.csv).is_file():
        raise ValueError(f"data.csv: {data.csv!r} does not exist; point it at a CSV with columns "
                         "path,label[,speaker]")
    if need_data and not data.csv:
        require_root(params)


def scan(root: Path, params: Params) -> pd.DataFrame:
    """One row per clip listed in ``data.csv``, or found in the label folders below ``root`` when it is null."""
    csv = params.data.csv
    if not csv and (Path(root) / "data.csv").is_file():
        csv = Path(root) / "data.csv"
        log.info("data.dir holds data.csv: reading the clips it lists (%s), not label sub-folders", CSV_LAYOUT)
    clips = _from_csv(Path(csv)) if csv else _from_folders(Path(root))
    unknown = int((clips["speaker"] == UNKNOWN).sum())
    if unknown:
        log.info("%d of %d clips have no speaker id (speaker=%r): only cv.group_by: none can split them",
                 unknown, len(clips), UNKNOWN)
    return clips


def _from_folders(root: Path) -> pd.DataFrame:
    def parse(path: Path) -> dict | None:
        rel = path.relative_to(root)
        if len(rel.parts) < 2:
            return None
        return dict(clip_id=rel.as_posix(), label=canonical(rel.parts[0]), speaker=UNKNOWN)

    return _scan(root, "folder", FOLDER_LAYOUT, parse)


def _read_csv(csv: Path) -> pd.DataFrame:
    if not csv.is_file():
        raise DatasetError(f"CSV {csv} does not exist: set data.csv in params.yaml to a CSV with "
                           f"{CSV_LAYOUT}")
    try:
        text = csv.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DatasetError(f"CSV {csv} is not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start}): "
                           "save it as UTF-8 (in Excel: 'CSV UTF-8'; or `iconv -f cp1252 -t utf-8`), then re-run "
                           "prepare") from None
    try:
        header = [str(c) for c in pd.read_csv(io.StringIO(text), nrows=0, skipinitialspace=True).columns]
    except pd.errors.EmptyDataError:
        header = []
    names = _standard_names(header)
    table = pd.DataFrame()
    if header:
        table = pd.read_csv(io.StringIO(text), dtype=dict.fromkeys(names, str), skipinitialspace=True,
                            keep_default_na=False)
    table = table.rename(columns=lambda c: names.get(c, str(c).strip()))
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise DatasetError(f"CSV {csv} lacks the column(s) {missing}: found {list(table.columns)}, required "
                           f"{CSV_LAYOUT} (data.csv in params.yaml)")
    return table


def _standard_names(columns: list[str]) -> dict[str, str]:
    """Header name -> standard name, for the columns this parser reads (case and spaces ignored)."""
    names: dict[str, str] = {}
    for column in columns:
        key = column.strip().lower()
        target = key if key in STANDARD else ALTERNATIVES.get(key)
        taken = target in names.values() or any(c.strip() == target for c in columns if c != column)
        if target and not taken:
            names[column] = target
    return names


def _from_csv(csv: Path) -> pd.DataFrame:
    table = _read_csv(csv)
    for column in REQUIRED:
        table[column] = table[column].fillna("").astype(str).str.strip()
    blank = (table["path"] == "") | (table["label"] == "")
    skipped = [row.path or f"{csv}, line {i + 2}" for i, row in zip(table.index[blank], table[blank].itertuples())]
    if blank.any():
        log.warning("%s: skipped %d row(s) with an empty path or label; listed in data/excluded.csv", csv,
                    int(blank.sum()))
        table = table.loc[~blank]
    if table.empty:
        raise DatasetError(f"CSV {csv} lists no clips: expected {CSV_LAYOUT} (data.csv in params.yaml)")
    base = csv.parent.resolve()
    paths = [(base / Path(p).expanduser()).resolve() for p in table["path"]]
    if "clip_id" not in table.columns:
        table["clip_id"] = table["path"]  # as the CSV writes it
    table = table.assign(path=[str(p) for p in paths], label=table["label"].map(canonical),
                         speaker=_speakers(table))
    _check_unique(table, csv)
    _warn_missing(paths, csv)
    return with_skipped(_frame(table.reset_index(drop=True), "folder", csv.parent, CSV_LAYOUT), skipped,
                        f"empty path or label in {csv.name}")


def _speakers(table: pd.DataFrame) -> pd.Series:
    if "speaker" not in table.columns:
        return pd.Series(UNKNOWN, index=table.index)
    return table["speaker"].fillna("").astype(str).str.strip().replace("", UNKNOWN)


def _check_unique(table: pd.DataFrame, csv: Path) -> None:
    for column in ("path", "clip_id"):
        dup = table[column].duplicated()
        if dup.any():
            raise DatasetError(f"CSV {csv}: {int(dup.sum())} row(s) repeat a {column} listed before, e.g. "
                               f"{table.loc[dup, column].iloc[0]!r}; list each clip once")


def _warn_missing(paths: list[Path], csv: Path) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        log.warning("%s: %d listed file(s) do not exist (they will be excluded as unreadable), e.g. %s",
                    csv, len(missing), ", ".join(str(p) for p in missing[:3]))
