"""MFCC statistics: mean and standard deviation over time of 40 MFCCs and their deltas."""

from __future__ import annotations

import librosa
import numpy as np

from ser.config import MfccParams
from ser.features import identity, per_clip


class MfccStats:
    """librosa MFCCs (Hamming window) pooled into mean+std of the coefficients and their deltas."""

    def __init__(self, mfcc: MfccParams, sample_rate: int = 16000):
        self.p = mfcc
        self.sample_rate = sample_rate

    def identity(self) -> dict:
        return identity("mfcc", ("librosa",), sample_rate=self.sample_rate, **self.p.model_dump())

    def vector(self, wave: np.ndarray) -> np.ndarray:
        p = self.p
        m = librosa.feature.mfcc(y=wave, sr=self.sample_rate, n_mfcc=p.n_mfcc, n_fft=p.n_fft,
                                 hop_length=p.hop_length, win_length=p.win_length, window=p.window,
                                 fmin=p.fmin, fmax=min(p.fmax, self.sample_rate / 2))
        d = librosa.feature.delta(m, width=min(9, m.shape[1] - (1 - m.shape[1] % 2))) \
            if m.shape[1] >= 3 else np.zeros_like(m)
        return np.concatenate([m.mean(1), m.std(1), d.mean(1), d.std(1)]).astype(np.float32)

    def transform(self, waves: list[np.ndarray]) -> np.ndarray:
        return per_clip(self.vector, waves)


def build(params) -> MfccStats:
    return MfccStats(params.features.mfcc, params.data.sample_rate)
