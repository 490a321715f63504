"""Toronto Emotional Speech Set (TESS): two female speakers, OAF (older) and YAF (younger).

Layout: ``OAF_angry/OAF_back_angry.wav``, ``YAF_pleasant_surprised/YAF_bath_ps.wav`` (searched
recursively): speaker, target word, emotion. The emotion comes from the file name's last field
(``ps`` and ``pleasant_surprise(d)`` = surprised, ``fear`` = fearful), else from the folder name,
which real copies spell inconsistently (``OAF_Fear``, ``OAF_Pleasant_surprise``); case is ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ser.corpora._files import _scan
from ser.corpora.emotions import ANGRY, DISGUST, FEARFUL, HAPPY, NEUTRAL, SAD, SURPRISED, canonical

if TYPE_CHECKING:
    from ser.config import Params

LAYOUT = "OAF_angry/OAF_back_angry.wav (speaker OAF/YAF, word, emotion)"
SPEAKERS = {"OAF", "YAF"}
EMOTIONS = {ANGRY, DISGUST, FEARFUL, HAPPY, NEUTRAL, SAD, SURPRISED}
PLEASANT = ("pleasant_surprise", "pleasant_surprised")


def _emotion(fields: list[str]) -> tuple[str | None, int]:
    """(canonical emotion or None, how many trailing fields spelled it)."""
    if len(fields) >= 2 and "_".join(fields[-2:]).lower() in PLEASANT:
        return SURPRISED, 2
    label = canonical(fields[-1]) if fields else None
    return (label, 1) if label in EMOTIONS else (None, 1)


def _parse(path: Path) -> dict | None:
    fields = path.stem.split("_")
    speaker = fields[0].upper()
    if speaker not in SPEAKERS or len(fields) < 3:
        return None
    label, width = _emotion(fields[1:])
    if label is None:
        label, _ = _emotion(path.parent.name.split("_")[1:])
        width = 1
    if label is None:
        return None
    return dict(label=label, speaker=speaker, word="_".join(fields[1:-width]).lower(), sex="female")


def scan(root: Path, params: Params) -> pd.DataFrame:
    """One row per TESS clip below ``root``; speaker is OAF or YAF."""
    return _scan(root, "TESS", LAYOUT, _parse)
