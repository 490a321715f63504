"""Augmented copies of clips (audiomentations), each one reproducible on its own.

Copy ``aug`` of a clip is a pure function of (seed, clip id, aug): its random draws come from a
SeedSequence of those three, never from the order, batching or thread that produced it.
audiomentations draws from the global ``random`` and ``numpy.random`` generators, so each copy
seeds both under a lock and restores their previous state afterwards.

Gain is given as a linear amplitude factor (0.8-1.2 by default) and converted to the dB range
audiomentations takes: 20*log10(0.8) = -1.94 dB to 20*log10(1.2) = +1.58 dB. TimeStretch changes
the duration (leave_length_unchanged=False): a clip slowed down is not cut, one sped up is not
padded with silence.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading

import numpy as np

from ser.config import AugmentParams


def gain_db(factor: float) -> float:
    """A linear amplitude factor in dB."""
    return 20 * math.log10(factor)


def aug_seed(seed: int, clip_id: str, aug: int) -> np.random.SeedSequence:
    """The SeedSequence of augmented copy ``aug`` of ``clip_id`` (a stable hash: no PYTHONHASHSEED involved)."""
    digest = hashlib.sha256(f"{seed}\0{clip_id}\0{aug}".encode()).digest()
    return np.random.SeedSequence(int.from_bytes(digest[:16], "little"))


class Augmenter:
    """``augmenter(wave, clip_id, aug)`` -> the augmented float32 wave (aug >= 1)."""

    def __init__(self, params: AugmentParams, seed: int, sample_rate: int):
        import audiomentations as am

        self.params, self.seed, self.sample_rate = params, seed, sample_rate
        self.version = am.__version__
        t, ps, n, g = params.time_stretch, params.pitch_shift, params.gaussian_snr, params.gain
        self.compose = am.Compose([
            am.TimeStretch(min_rate=t.min_rate, max_rate=t.max_rate, leave_length_unchanged=False, p=t.p),
            am.PitchShift(min_semitones=ps.min_semitones, max_semitones=ps.max_semitones, p=ps.p),
            am.AddGaussianSNR(min_snr_db=n.min_snr_db, max_snr_db=n.max_snr_db, p=n.p),
            am.Gain(min_gain_db=gain_db(g.min_factor), max_gain_db=gain_db(g.max_factor), p=g.p),
        ])
        self._lock = threading.Lock()

    def settings(self) -> dict:
        """What changes the copies (not their number: copy ``aug`` is the same whatever n_augmentations is)."""
        transforms = self.params.model_dump(exclude={"n_augmentations"})
        return {**transforms, "seed": self.seed, "sample_rate": self.sample_rate, "audiomentations": self.version}

    def __call__(self, wave: np.ndarray, clip_id: str, aug: int) -> np.ndarray:
        py_seed, np_seed = aug_seed(self.seed, clip_id, aug).generate_state(2)
        with self._lock:
            py_state, np_state = random.getstate(), np.random.get_state()
            try:
                random.seed(int(py_seed))
                np.random.seed(int(np_seed))
                out = self.compose(samples=np.ascontiguousarray(wave, dtype=np.float32),
                                   sample_rate=self.sample_rate)
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)
        return np.ascontiguousarray(out, dtype=np.float32)
