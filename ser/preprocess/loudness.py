"""Level normalisation: to a peak level, or to an integrated loudness (ITU-R BS.1770-4, gated, through
pyloudnorm) with the gain capped so the peak stays below ``peak_dbfs``."""

from __future__ import annotations

import numpy as np

BLOCK_SECONDS = 0.4  # BS.1770's gating block: the shortest audio whose loudness is defined


def peak(wave: np.ndarray, peak_dbfs: float) -> np.ndarray:
    top = float(np.max(np.abs(wave))) if len(wave) else 0.0
    if top == 0.0:
        raise ValueError("normalize: peak: the audio is digital silence")
    return (wave * (10 ** (peak_dbfs / 20) / top)).astype(np.float32)


def loudness(wave: np.ndarray, sample_rate: int, lufs: float, peak_dbfs: float) -> np.ndarray:
    import pyloudnorm

    if len(wave) < BLOCK_SECONDS * sample_rate:
        raise ValueError(f"normalize: loudness: {len(wave) / sample_rate:.2f} s of audio is shorter than the "
                         f"{BLOCK_SECONDS} s BS.1770 needs (use normalize: peak for such short clips)")
    measured = pyloudnorm.Meter(sample_rate).integrated_loudness(wave.astype(np.float64))
    if not np.isfinite(measured):
        raise ValueError("normalize: loudness: every block is below BS.1770's -70 LUFS gate (silence)")
    gain = 10 ** ((lufs - measured) / 20)
    top = float(np.max(np.abs(wave)))
    return (wave * min(gain, 10 ** (peak_dbfs / 20) / top)).astype(np.float32)
