"""MFCCs: statistics over time (mean and standard deviation of 40 MFCCs and their deltas, 160 values), or
with ``features.pooling: none`` the frame sequence itself (n_mfcc x T: 40 coefficients per 10 ms hop of
a 25 ms Hamming window, 20 Hz - 8 kHz, the ``features.mfcc`` defaults)."""

from __future__ import annotations

import librosa
import numpy as np

from ser.config import MfccParams
from ser.errors import ConfigError
from ser.features import identity, per_clip


class MfccStats:
    """librosa MFCCs (Hamming window) pooled into mean+std of the coefficients and their deltas, or
    (``frames``) the coefficients per frame, as a float16 (frames, 1, n_mfcc) array."""

    def __init__(self, mfcc: MfccParams, sample_rate: int = 16000, frames: bool = False):
        self.p = mfcc
        self.sample_rate = sample_rate
        self.frames = frames

    def identity(self) -> dict:
        extra = {"pooling": "none"} if self.frames else {}
        return identity("mfcc", ("librosa",), sample_rate=self.sample_rate, **self.p.model_dump(), **extra)

    def coefficients(self, wave: np.ndarray) -> np.ndarray:
        """(n_mfcc, frames) MFCCs."""
        p = self.p
        return librosa.feature.mfcc(y=wave, sr=self.sample_rate, n_mfcc=p.n_mfcc, n_fft=p.n_fft,
                                    hop_length=p.hop_length, win_length=p.win_length, window=p.window,
                                    fmin=p.fmin, fmax=min(p.fmax, self.sample_rate / 2))

    def vector(self, wave: np.ndarray) -> np.ndarray:
        m = self.coefficients(wave)
        d = librosa.feature.delta(m, width=min(9, m.shape[1] - (1 - m.shape[1] % 2))) \
            if m.shape[1] >= 3 else np.zeros_like(m)
        return np.concatenate([m.mean(1), m.std(1), d.mean(1), d.std(1)]).astype(np.float32)

    def sequence(self, wave: np.ndarray) -> np.ndarray:
        return self.coefficients(wave).T[:, None, :].astype(np.float16)

    def transform(self, waves: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        if self.frames:
            return [self.sequence(w) for w in waves]
        return per_clip(self.vector, waves)


def build(params) -> MfccStats:
    pooling = params.features.pooling
    if pooling == "mean_std":
        raise ConfigError("features.pooling: mean_std does not apply to mfcc, whose vector holds means and standard "
                          "deviations already; set features.pooling: mean (statistics) or none (frames)")
    return MfccStats(params.features.mfcc, params.data.sample_rate, frames=pooling == "none")
