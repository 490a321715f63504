"""SYNTHETIC corpus: speech-like harmonic audio, so the whole pipeline runs offline in minutes.

Each clip is a voiced source (harmonics of a gliding pitch with vibrato) cut into syllables by an
amplitude envelope, plus a little breath noise. Pitch, loudness, syllable rate and brightness depend
on the class; every speaker shifts pitch and brightness and adds a voice of their own, so classes
are learnable but speaker-independent evaluation is not trivial. Deterministic by seed. Numbers
measured on it say nothing about real emotion recognition: it is labelled ``synthetic`` everywhere.
Files are named ``spk03_happy_007.wav``.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import soundfile as sf

from ser.errors import DatasetError

if TYPE_CHECKING:
    from ser.config import Params

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
# class -> (pitch Hz, loudness, syllables per second, brightness)
PROFILES = {
    "angry": (210.0, 0.50, 5.0, 0.80),
    "happy": (240.0, 0.35, 4.4, 0.60),
    "neutral": (140.0, 0.20, 3.6, 0.35),
    "sad": (115.0, 0.12, 2.4, 0.20),
    "fearful": (260.0, 0.22, 5.6, 0.45),
    "disgust": (150.0, 0.30, 2.8, 0.70),
    "surprised": (280.0, 0.40, 3.8, 0.55),
    "calm": (125.0, 0.15, 3.0, 0.30),
}
NAME = re.compile(r"^spk(\d+)_([a-z]+)_(\d+)$")


def _profile(label: str, index: int) -> tuple[float, float, float, float]:
    if label in PROFILES:
        return PROFILES[label]
    rng = np.random.default_rng(index + 1000)
    return (rng.uniform(110, 280), rng.uniform(0.12, 0.5), rng.uniform(2.4, 5.6), rng.uniform(0.2, 0.8))


def _clip(rng: np.random.Generator, profile: tuple, voice: tuple, duration: float) -> np.ndarray:
    pitch, loud, rate, bright = profile
    shift, tilt, jitter = voice
    n = int(duration * rng.uniform(0.85, 1.15) * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    glide = np.linspace(1.0, rng.uniform(0.8, 1.2), n)
    vibrato = 1 + 0.03 * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
    f0 = pitch * shift * glide * vibrato * rng.uniform(0.92, 1.08)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    harmonics = np.arange(1, 16)
    weights = harmonics ** -(2.2 - 1.4 * np.clip(bright + tilt, 0, 1))
    voiced = (weights[:, None] * np.sin(harmonics[:, None] * phase)).sum(0) / weights.sum()
    syllable_rate = rate * rng.uniform(0.9, 1.1)
    envelope = np.clip(np.sin(np.pi * syllable_rate * t + rng.uniform(0, np.pi)), 0, None) ** 1.5
    signal = loud * rng.uniform(0.8, 1.2) * envelope * voiced
    signal += jitter * loud * rng.standard_normal(n) * envelope
    signal += 0.002 * rng.standard_normal(n)
    return np.clip(signal, -1, 1).astype(np.float32)


def generate(root: Path, speakers: int, clips: int, classes: list[str], duration: float, seed: int) -> None:
    """Write the corpus to ``root`` (replacing what was there); the same seed gives the same bytes."""
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for s in range(speakers):
        vrng = np.random.default_rng([seed, s])
        voice = (vrng.uniform(0.7, 1.35), vrng.uniform(-0.15, 0.15), vrng.uniform(0.02, 0.12))
        for c, label in enumerate(classes):
            for k in range(clips):
                rng = np.random.default_rng([seed, s, c, k])
                audio = _clip(rng, _profile(label, c), voice, duration)
                sf.write(tmp / f"spk{s:02d}_{label}_{k:03d}.wav", audio, SAMPLE_RATE, subtype="PCM_16")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)


def fetch(root: Path, params: Params) -> None:
    """:func:`generate` the corpus ``synthetic`` describes, seeded by ``seed``."""
    s = params.synthetic
    log.info("generating the SYNTHETIC corpus in %s (%d speakers x %d classes x %d clips)",
             root, s.speakers, len(s.classes), s.clips)
    generate(root, s.speakers, s.clips, s.classes, s.duration, params.seed)


def scan(root: Path, params: Params) -> pd.DataFrame:
    """One row per generated clip, with speaker and class parsed from the file name."""
    rows = []
    for path in sorted(Path(root).glob("*.wav")):
        m = NAME.match(path.stem)
        if m:
            rows.append(dict(clip_id=path.stem, path=str(path.resolve()), label=m[2], speaker=f"spk{m[1]}"))
    if not rows:
        raise DatasetError(f"no synthetic clips in {root}: the prepare stage generates them there")
    return pd.DataFrame(rows).sort_values("clip_id", ignore_index=True)
