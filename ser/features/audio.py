"""The clips' audio itself, for fine-tuning (``classifier: finetune``): what the extract stage stores
instead of embeddings when the classifier trains the encoder.

Each clip becomes a (samples, 1, 1) float32 sequence, so the per-clip cache, resume, augmentation
(applied to the waves before this), exclusions and the lazily read ``frames.npy`` of frame features
carry the audio unchanged, and predict cuts, cleans and batches new recordings as for any extractor.
The sample rate is the encoder's (16 kHz for the WavLM/HuBERT/wav2vec2 and Whisper families).
"""

from __future__ import annotations

import numpy as np

from ser.features import identity as feature_identity

AUDIO_RATE = 16000


class Audio:
    """``transform(waves)``: each wave as a (samples, 1, 1) float32 array."""

    sample_rate = AUDIO_RATE

    def identity(self) -> dict:
        return feature_identity("audio", (), sample_rate=self.sample_rate, pooling="none")

    def transform(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(w, np.float32).reshape(-1, 1, 1) for w in waves]


def build(params) -> Audio:
    return Audio()
