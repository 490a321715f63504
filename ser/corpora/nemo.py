"""nEMO (Christop, LREC-COLING 2024): Polish emotional speech by 9 actors, with transcripts.

Layout: ``samples/EB0_anger_1.wav`` (searched recursively; any supported audio format) and the corpus'
metadata file ``data.tsv`` beside ``samples/`` (tab-separated: ``file_id``, ``emotion``, ``raw_text``,
``normalized_text``, ``speaker_id``, ``gender``, ``age``). Speaker and emotion come from the file name
(``<speaker>_<emotion>_<n>``) and must agree with data.tsv; the transcript (``normalized_text``) becomes
the manifest's ``text`` column, so fine-tuning's CTC head learns Polish. Files are matched to data.tsv by
stem (it names the original ``.wav``); a file data.tsv does not list, or lists with another speaker or
emotion, is left out with the reason. Emotions: anger, fear, happiness, neutral, sadness, surprised.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ser.corpora._files import _hint, _scan
from ser.corpora.emotions import canonical
from ser.errors import DatasetError

if TYPE_CHECKING:
    from ser.config import Params

LAYOUT = "samples/EB0_anger_1.wav (speaker, emotion, number) and data.tsv (file_id, emotion, normalized_text, ...)"
NAME = re.compile(r"^([A-Z]{2}\d)_(anger|fear|happiness|neutral|sadness|surprised)_(\d+)$", re.IGNORECASE)
METADATA = "data.tsv"
COLUMNS = ("file_id", "emotion", "raw_text", "normalized_text", "speaker_id", "gender", "age")


def metadata(root: Path) -> pd.DataFrame:
    """data.tsv below ``root`` (the shallowest one), indexed by file stem, its fields stripped of spaces."""
    found = sorted(Path(root).rglob(METADATA), key=lambda p: (len(p.parts), str(p)))
    if not found:
        raise DatasetError(f"nEMO's {METADATA} (speakers, emotions, transcripts) is not in {root}: "
                           + _hint("nEMO", root, LAYOUT))
    table = pd.read_csv(found[0], sep="\t", dtype=str, keep_default_na=False, quoting=3)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError(f"{found[0]} lacks the column(s) {missing} (has {list(table.columns)}): it is not nEMO's "
                           f"{METADATA}; " + _hint("nEMO", root, LAYOUT))
    table = table.apply(lambda column: column.str.strip())
    table.index = table["file_id"].map(lambda name: Path(name).stem)
    return table[~table.index.duplicated()]


def scan(root: Path, params: Params) -> pd.DataFrame:
    """One row per nEMO clip below ``root``; speaker is the actor id (EB0, ...), ``text`` the transcript."""
    table = None  # read at the first clip, so that a folder without clips says so first

    def parse(path: Path) -> dict | str | None:
        nonlocal table
        m = NAME.match(path.stem)
        if not m:
            return None
        if table is None:
            table = metadata(root)
        speaker, emotion = m[1].upper(), canonical(m[2])
        if path.stem not in table.index:
            return f"not listed in nEMO's {METADATA}"
        row = table.loc[path.stem]
        if (row["speaker_id"].upper(), canonical(row["emotion"])) != (speaker, emotion):
            return (f"{METADATA} says speaker {row['speaker_id']}, emotion {row['emotion']}; the file name says "
                    f"{speaker}, {m[2]}")
        age = int(row["age"]) if row["age"].isdigit() else None
        return dict(label=emotion, speaker=speaker, text=row["normalized_text"], raw_text=row["raw_text"],
                    sex=row["gender"].lower(), age=age)

    return _scan(root, "nEMO", LAYOUT, parse)
