"""Berlin Database of Emotional Speech (EmoDB).

Layout: ``wav/03a01Fa.wav`` (searched recursively): speaker (2 digits), text code (3 characters),
emotion letter (German initial) and version letter. Sex and age come from the corpus' speaker table.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ser.corpora._files import _scan
from ser.corpora.emotions import ANGRY, DISGUST, FEARFUL, HAPPY, NEUTRAL, SAD

if TYPE_CHECKING:
    from ser.config import Params

LAYOUT = "wav/03a01Fa.wav (speaker, text code, emotion letter W/L/E/A/F/T/N, version)"
NAME = re.compile(r"^(\d{2})([a-z]\d{2})([WLEAFTN])([a-z])$", re.IGNORECASE)
# Ärger/Wut, Langeweile, Ekel, Angst, Freude, Trauer, Neutral
EMOTIONS = {"W": ANGRY, "L": "boredom", "E": DISGUST, "A": FEARFUL, "F": HAPPY, "T": SAD, "N": NEUTRAL}
SPEAKERS = {"03": ("male", 31), "08": ("female", 34), "09": ("female", 21), "10": ("male", 32),
            "11": ("male", 26), "12": ("male", 30), "13": ("female", 32), "14": ("female", 35),
            "15": ("male", 25), "16": ("female", 31)}


def _parse(path: Path) -> dict | None:
    m = NAME.match(path.stem)
    if not m or m[1] not in SPEAKERS:
        return None
    sex, age = SPEAKERS[m[1]]
    return dict(label=EMOTIONS[m[3].upper()], speaker=m[1], sentence=m[2].lower(), version=m[4].lower(),
                sex=sex, age=age)


def scan(root: Path, params: Params) -> pd.DataFrame:
    """One row per EmoDB clip below ``root``; speaker is the two-digit speaker id."""
    return _scan(root, "EmoDB", LAYOUT, _parse)
