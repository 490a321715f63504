"""params.yaml ``trust``: the open-set rejection that train fits and predict applies."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ser.section import Section as _Section


class TrustParams(_Section):
    """``novelty`` scores how unlike the training corpus an input is (:mod:`ser.trust.novelty`); predict
    labels input above the threshold ``unknown``. The threshold rejects ``false_rejection`` of the
    out-of-fold clips (unseen speakers of the training corpus)."""

    novelty: Literal["mahalanobis", "knn", "msp"] = "mahalanobis"
    speech: Literal["silero", "none"] = Field("silero", description="silero: a window without speech (Silero VAD) is "
                                             "unknown, whatever its novelty")
    speech_threshold: float = Field(0.5, gt=0, lt=1, description="the highest frame speech probability a window needs")
    false_rejection: float = Field(0.05, gt=0, lt=0.5, description="share of unseen in-corpus clips rejected")
    knn_k: int = Field(10, ge=1, description="knn: distance to the k-th nearest training clip")
