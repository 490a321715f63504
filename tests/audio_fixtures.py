"""Small audio files made by the tests themselves."""

from pathlib import Path

import numpy as np
import soundfile as sf


def tone(path: Path, seconds: float = 0.5, sr: int = 16000, freq: float = 220.0, channels: int = 1,
         level: float = 0.3, fmt: str | None = None) -> Path:
    """A harmonic tone with a little noise, written with soundfile."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(int(freq))
    wave = level * (np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(4 * np.pi * freq * t))
    wave = wave + 0.03 * level * rng.standard_normal(len(t))
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data.astype(np.float32), sr, format=fmt)
    return path
