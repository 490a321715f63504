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


VOWELS = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410)]  # F1-F3


def vowels(seconds: float, sr: int = 16000, f0: float = 120.0, seed: int = 0) -> np.ndarray:
    """Speech-like audio that Silero VAD takes for speech: 200 ms syllables of a glottal pulse train
    (rising and falling pitch) through three formant resonators of a random vowel, peak 0.3."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n, syllable = int(seconds * sr), int(0.2 * sr)
    out = np.zeros(n)
    for start in range(0, n, syllable):
        m = min(syllable, n - start)
        pitch = f0 * (1 + 0.1 * np.sin(np.linspace(0, np.pi, m))) * rng.uniform(0.9, 1.1)
        pulses = (np.diff(np.floor(np.cumsum(pitch / sr)), prepend=0) > 0).astype(float)
        y = lfilter([1], [1, -0.97], pulses)
        for fc, bw in zip(VOWELS[rng.integers(len(VOWELS))], (80, 100, 120)):
            r, theta = np.exp(-np.pi * bw / sr), 2 * np.pi * fc / sr
            y = lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], y)
        out[start:start + m] = y * np.sin(np.linspace(0, np.pi, m)) ** 0.5
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


def bursts(sr: int = 16000, seed: int = 0) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """1 s of silence, 1.2 s of :func:`vowels`, 1 s of silence, 0.8 s of vowels, 1 s of silence; and the
    bursts' sample ranges."""
    first, second, pause = vowels(1.2, sr, 120.0, seed), vowels(0.8, sr, 180.0, seed + 1), np.zeros(sr, np.float32)
    wave = np.concatenate([pause, first, pause, second, pause])
    a = (sr, sr + len(first))
    return wave, [a, (a[1] + sr, a[1] + sr + len(second))]


def snr_db(x: np.ndarray, clean: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(clean ** 2) / np.sum((x - clean) ** 2)))
