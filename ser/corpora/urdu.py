"""URDU (Latif et al., 2018): natural Urdu speech cut from TV talk shows, 4 emotions.

Layout: ``Angry/SM1_F19_A019.wav`` (searched recursively): the folder is the emotion (Angry, Happy,
Neutral, Sad); the file is ``S<G><id>_F<n>_<E><nn>``: speaker (sex M/F and number), the speaker's
file number, and the emotion's initial (A/H/N/S) with the clip's index in that emotion. A file whose
initial disagrees with its folder is left out with that reason.

Most speakers occur in one emotion only, so a speaker's voice and the class go together; the folds
stay speaker-independent (prepare notes the confound, :mod:`ser.models.feasibility`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ser.corpora._files import _scan
from ser.corpora.emotions import ANGRY, HAPPY, NEUTRAL, SAD

if TYPE_CHECKING:
    from ser.config import Params

LAYOUT = "Angry/SM1_F19_A019.wav (emotion folder; speaker S+M/F+number, file F+number, emotion initial+index)"
NAME = re.compile(r"^(S([MF])\d+)_F(\d+)_([AHNS])(\d+)$", re.IGNORECASE)
EMOTIONS = {"A": ANGRY, "H": HAPPY, "N": NEUTRAL, "S": SAD}
FOLDERS = {"angry": ANGRY, "happy": HAPPY, "neutral": NEUTRAL, "sad": SAD}


def _parse(path: Path) -> dict | str | None:
    m = NAME.match(path.stem)
    folder = FOLDERS.get(path.parent.name.lower())
    if not m or folder is None:
        return None
    label = EMOTIONS[m[4].upper()]
    if label != folder:
        return f"URDU file name says {label} ({m[4].upper()}) but its folder says {folder}"
    return dict(label=label, speaker=m[1].upper(), take=int(m[3]), sex="male" if m[2].upper() == "M" else "female")


def scan(root: Path, params: Params) -> pd.DataFrame:
    """One row per URDU clip below ``root``; speaker is the file name's first field (SM1, SF10, ...)."""
    return _scan(root, "URDU", LAYOUT, _parse)
