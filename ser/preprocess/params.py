"""params.yaml ``preprocess``: the Tier-0 chain's settings (:mod:`ser.preprocess.pipeline`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ser.section import Section as _Section


class SileroParams(_Section):
    threshold: float = Field(0.5, gt=0, lt=1, description="speech probability above which a 32 ms frame is speech")
    min_speech_ms: int = Field(250, ge=0, description="shorter speech regions are dropped")
    min_silence_ms: int = Field(100, ge=0, description="shorter pauses do not end a region")
    pad_ms: int = Field(100, ge=0, description="kept either side of each region")


class PreprocessParams(_Section):
    """Applied to every clip before augmentation and features, in this order: vad finds the speech on the
    input, denoise cleans the clip, the speech is kept, normalize (:mod:`ser.preprocess.pipeline`); part of
    the feature identity, so predict applies the same."""

    denoise: Literal["none", "deepfilternet", "demucs"] = "none"
    demucs_checkpoint: str | None = Field(None, description="denoise: demucs: the DNS64 (or any Demucs) weights file")
    atten_lim_db: float = Field(100.0, gt=0, description="deepfilternet: at most this much attenuation")
    vad: Literal["none", "silero"] = "none"
    silero: SileroParams = SileroParams()
    normalize: Literal["none", "peak", "loudness"] = "none"
    peak_dbfs: float = Field(-1.0, le=0, description="normalize: peak: the peak level; loudness: the ceiling")
    loudness_lufs: float = Field(-23.0, lt=0, description="normalize: loudness: the integrated loudness (BS.1770)")

    @model_validator(mode="after")
    def _checkpoint(self) -> PreprocessParams:
        if self.denoise == "demucs" and not self.demucs_checkpoint:
            raise ValueError("preprocess.denoise: demucs needs preprocess.demucs_checkpoint, the path of its weights "
                             "(e.g. dns64-a7761ff99a7d5bb6.th from the denoiser package's release)")
        return self

    @property
    def active(self) -> bool:
        return (self.denoise, self.vad, self.normalize) != ("none", "none", "none")
