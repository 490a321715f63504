"""Speech presence: the part of open-set rejection that tells "not speech" from "speech of a new speaker or
recording set-up".

A feature-space novelty score set on a corpus's own unseen speakers calls every other studio unfamiliar (a
RAVDESS model rejected 100% of three other corpora's speech), while what a user needs rejected is input that
is not speech at all. Silero VAD tells that apart whatever the studio or language: the highest speech
probability of a window's 32 ms frames. ``trust.speech: silero`` rejects a window whose highest probability is
below ``trust.speech_threshold`` (0.5). How much non-speech and how much of other corpora's speech that
rejects is what ``benchmarks/bench_trust.py corpora`` measures; it has not been run yet (#28).
"""

from __future__ import annotations

import numpy as np

from ser.preprocess.vad import SpeechProbabilities, to_vad_rate


def speech_presence(wave: np.ndarray, sample_rate: int) -> float:
    """The highest Silero VAD speech probability among a window's frames (0 for an empty one)."""
    probs = SpeechProbabilities()
    probs.add(to_vad_rate(np.asarray(wave, np.float32), sample_rate))
    found = probs.finish()
    return float(found.max()) if len(found) else 0.0
