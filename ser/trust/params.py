"""params.yaml ``trust``: the open-set rejection that train fits and predict applies."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ser.section import Section as _Section


class TrustParams(_Section):
    """What predict labels ``unknown``: a window without speech (``speech``, :mod:`ser.trust.speech`), and input
    whose ``novelty`` score (:mod:`ser.trust.novelty`) is above its threshold, which rejects ``false_rejection``
    of the out-of-fold clips. ``novelty_gate`` says when that threshold rejects: ``corpora`` (default) only when
    the out-of-fold clips were held-out corpora (``cv.group_by: corpus``), since a threshold set on one studio's
    unseen speakers rejects every other studio's speech; ``speakers`` also then (input from the training set-up
    only); ``off`` never (the score is still reported)."""

    novelty: Literal["auto", "mahalanobis", "knn", "msp"] = Field(
        "auto", description="auto: mahalanobis on feature vectors, msp for a classifier that reads audio (finetune)")
    novelty_gate: Literal["corpora", "speakers", "off"] = "corpora"
    speech: Literal["silero", "none"] = Field("silero", description="silero: a window without speech (Silero VAD) is "
                                             "unknown, whatever its novelty")
    speech_threshold: float = Field(0.5, gt=0, lt=1, description="the highest frame speech probability a window needs")
    false_rejection: float = Field(0.05, gt=0, lt=0.5, description="share of unseen in-corpus clips rejected")
    knn_k: int = Field(10, ge=1, description="knn: distance to the k-th nearest training clip")


def novelty_method(trust: TrustParams, reads_audio: bool) -> str:
    """The score ``trust.novelty`` names; ``auto``: mahalanobis on feature vectors, msp for audio input."""
    if trust.novelty == "auto":
        return "msp" if reads_audio else "mahalanobis"
    return trust.novelty
