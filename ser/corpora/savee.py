"""Surrey Audio-Visual Expressed Emotion (SAVEE), four male speakers (DC, JE, JK, KL).

Two layouts, searched recursively: the original ``AudioData/DC/a01.wav`` (one folder per speaker)
and the flat Kaggle one ``ALL/DC_a01.wav``. The file prefix is the emotion: a angry, d disgust,
f fear, h happy, n neutral, sa sad, su surprise; the number is the take. Clip ids are ``DC_a01``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ser.corpora._files import _scan
from ser.corpora.emotions import ANGRY, DISGUST, FEARFUL, HAPPY, NEUTRAL, SAD, SURPRISED

if TYPE_CHECKING:
    from ser.config import Params

LAYOUT = "AudioData/DC/a01.wav or ALL/DC_a01.wav (emotion prefix a/d/f/h/n/sa/su + number)"
NAME = re.compile(r"^(?:([a-z]{2})_)?(a|d|f|h|n|sa|su)(\d+)$", re.IGNORECASE)
SPEAKER = re.compile(r"^[a-z]{2}$", re.IGNORECASE)
EMOTIONS = {"a": ANGRY, "d": DISGUST, "f": FEARFUL, "h": HAPPY, "n": NEUTRAL, "sa": SAD, "su": SURPRISED}


def _parse(path: Path) -> dict | None:
    m = NAME.match(path.stem)
    if not m:
        return None
    speaker = m[1] or (path.parent.name if SPEAKER.match(path.parent.name) else None)
    if speaker is None:
        return None
    speaker, code = speaker.upper(), m[2].lower()
    return dict(clip_id=f"{speaker}_{code}{m[3]}", label=EMOTIONS[code], speaker=speaker, take=int(m[3]),
                sex="male")


def scan(root: Path, params: Params) -> pd.DataFrame:
    """One row per SAVEE clip below ``root``, in either layout; speaker is DC, JE, JK or KL."""
    return _scan(root, "SAVEE", LAYOUT, _parse)
