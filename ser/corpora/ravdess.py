"""RAVDESS (Ryerson Audio-Visual Database of Emotional Speech and Song), the audio files.

Layout: ``Actor_AA/MM-CC-EE-II-SS-RR-AA.wav`` (any supported audio extension), searched recursively,
where the seven two-digit fields are modality, vocal channel (01 speech, 02 song), emotion, intensity
(01 normal, 02 strong), statement (01 "Kids are talking by the door", 02 "Dogs are sitting by the door": the
``text`` column), repetition and actor (odd ids male, even female). Song clips
(vocal channel 02, in the same Actor_ folders when both zips are unpacked together) are left out,
with that reason in data/excluded.csv: this is a speech corpus reader.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ser.corpora._files import _scan
from ser.corpora.emotions import ANGRY, CALM, DISGUST, FEARFUL, HAPPY, NEUTRAL, SAD, SURPRISED

if TYPE_CHECKING:
    from ser.config import Params

LAYOUT = "Actor_AA/03-01-EE-II-SS-RR-AA.wav (seven two-digit fields)"
NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
EMOTIONS = {"01": NEUTRAL, "02": CALM, "03": HAPPY, "04": SAD, "05": ANGRY, "06": FEARFUL, "07": DISGUST,
            "08": SURPRISED}
INTENSITIES = {"01": "normal", "02": "strong"}
CHANNELS = {"01": "speech", "02": "song"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}


def _parse(path: Path) -> dict | str | None:
    m = NAME.match(path.stem)
    if not m or m[3] not in EMOTIONS or m[4] not in INTENSITIES or int(m[7]) == 0:
        return None
    _, channel, emotion, intensity, statement, repetition, actor = m.groups()
    if channel != "01":
        return f"RAVDESS vocal channel {channel} ({CHANNELS.get(channel, 'unknown')}), not speech"
    return dict(label=EMOTIONS[emotion], speaker=actor, intensity=INTENSITIES[intensity], sentence=statement,
                text=STATEMENTS.get(statement, ""), repetition=int(repetition),
                sex="male" if int(actor) % 2 else "female", vocal_channel=CHANNELS.get(channel, channel))


def scan(root: Path, params: Params) -> pd.DataFrame:
    """One row per RAVDESS clip below ``root``; speaker is the actor id "01".."24"."""
    return _scan(root, "RAVDESS", LAYOUT, _parse)
