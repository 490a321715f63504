"""EMOVO (Costantini et al., LREC 2014): Italian emotional speech by 6 actors, 14 sentences in 7 emotions.

Layout: ``f1/dis-f1-b1.wav`` (searched recursively; any supported audio format): one folder per actor
(f1-f3 female, m1-m3 male), file ``<emotion>-<actor>-<sentence>``. The emotion codes are Italian:
dis disgusto, gio gioia, neu neutrale, pau paura, rab rabbia, sor sorpresa, tri tristezza. Sentence
codes: b1-b3 (nonsense), d1-d2 (short), l1-l4 (long), n1-n5 (normal).
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

LAYOUT = "f1/dis-f1-b1.wav (emotion dis/gio/neu/pau/rab/sor/tri, actor f1-f3 m1-m3, sentence)"
NAME = re.compile(r"^([a-z]{3})-([fm][1-3])-([a-z]\d)$", re.IGNORECASE)
EMOTIONS = {"dis": DISGUST, "gio": HAPPY, "neu": NEUTRAL, "pau": FEARFUL, "rab": ANGRY, "sor": SURPRISED,
            "tri": SAD}


def _parse(path: Path) -> dict | None:
    m = NAME.match(path.stem)
    if not m or m[1].lower() not in EMOTIONS:
        return None
    speaker = m[2].lower()
    return dict(label=EMOTIONS[m[1].lower()], speaker=speaker, sentence=m[3].lower(),
                sex="female" if speaker[0] == "f" else "male")


def scan(root: Path, params: Params) -> pd.DataFrame:
    """One row per EMOVO clip below ``root``; speaker is the actor f1..f3, m1..m3."""
    return _scan(root, "EMOVO", LAYOUT, _parse)
