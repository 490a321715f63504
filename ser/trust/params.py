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
    false_rejection: float = Field(0.05, gt=0, lt=0.5, description="share of unseen in-corpus clips rejected")
    knn_k: int = Field(10, ge=1, description="knn: distance to the k-th nearest training clip")
