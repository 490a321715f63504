"""Frame-level prosody targets computed from the audio itself, for the auxiliary prosody head: log pitch
(YIN) and log energy at the encoder's 50 frames per second, each standardised per clip; pitch counts
only on frames loud enough to be voiced."""

from __future__ import annotations

import numpy as np

HOP_SECONDS = 0.02  # the encoders' frame rate (WavLM, HuBERT, wav2vec2, Whisper: 50 frames/s)


def targets(wave: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """((frames, 2) standardised [log f0, log energy], (frames, 2) bool mask of frames that count)."""
    import librosa

    hop = int(round(HOP_SECONDS * sample_rate))
    frame = 4 * hop
    wave = np.asarray(wave, np.float32)
    if len(wave) < frame:
        wave = np.pad(wave, (0, frame - len(wave)))
    energy = np.log(librosa.feature.rms(y=wave, frame_length=frame, hop_length=hop)[0] + 1e-5)
    f0 = librosa.yin(wave, fmin=60.0, fmax=500.0, sr=sample_rate, frame_length=frame, hop_length=hop)
    n = min(len(energy), len(f0))
    energy, pitch = energy[:n], np.log(f0[:n])
    voiced = energy > energy.max() - np.log(10 ** (30 / 20))  # within 30 dB of the loudest frame
    out = np.zeros((n, 2), np.float32)
    mask = np.zeros((n, 2), bool)
    if voiced.sum() > 1:
        out[:, 0] = (pitch - pitch[voiced].mean()) / (pitch[voiced].std() + 1e-5)
        mask[:, 0] = voiced
    out[:, 1] = (energy - energy.mean()) / (energy.std() + 1e-5)
    mask[:, 1] = True
    return out, mask
