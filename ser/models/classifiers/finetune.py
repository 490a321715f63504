"""``finetune``: fine-tune the encoder of ``features.extractor`` / ``features.model`` (ssl or whisper) on
emotion, with CTC speech recognition and frame prosody as auxiliary tasks (:mod:`ser.finetune`).

It trains on the clips' audio: with this classifier the extract stage stores audio instead of
embeddings (:mod:`ser.features.audio`), so it never waits for an encoder extraction it would not use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ser.finetune.files import load, save  # noqa: F401
from ser.models.classifiers.torch_training import NOT_THREAD_SAFE  # noqa: F401 - read by ser.config
from ser.section import Section

if TYPE_CHECKING:
    import optuna

    from ser.config import Params as AllParams
    from ser.finetune.estimator import FineTuner

TAKES_AUDIO = True
SPACE_VERSION = 1  # bump when space() changes, so old studies are not resumed


class Params(Section):
    """params.yaml ``finetune``."""

    backbone_lr: float = Field(5e-5, gt=0, description="learning rate of the encoder")
    head_lr: float = Field(1e-3, gt=0, description="learning rate of the heads")
    weight_decay: float = Field(1e-2, ge=0)
    batch_size: int = Field(8, ge=2, description="clips per forward pass")
    accumulate: int = Field(2, ge=1, description="batches per optimizer step (gradient accumulation)")
    max_epochs: int = Field(10, ge=1)
    patience: int = Field(3, ge=1, description="early stopping on the UAR of a speaker-disjoint validation split")
    warmup_epochs: float = Field(1.0, ge=0, description="linear warmup, then cosine decay to 0")
    alpha_ser: float = Field(1.0, gt=0, description="weight of the emotion loss")
    alpha_asr: float = Field(0.1, ge=0, description="weight of the CTC loss on the transcript; 0: no CTC head")
    alpha_prosody: float = Field(0.0, ge=0, description="weight of the pitch/energy loss; 0: no prosody head")
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    class_weight: Literal["balanced", "none"] = "balanced"
    projection: int = Field(256, ge=8, description="SER head (the attentive classifier's): per-frame projection")
    attention_hidden: int = Field(128, ge=8)
    hidden: int = Field(256, ge=8)
    dropout: float = Field(0.2, ge=0, lt=1)
    freeze_feature_encoder: bool = Field(True, description="keep the convolutional front end fixed")
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass: less "
                                                            "memory, about a third more time")
    max_seconds: float = Field(8.0, gt=0, description="longer training clips are cropped at random to this")
    grad_clip: float = Field(1.0, gt=0)
    validation_fraction: float = Field(0.15, ge=0, lt=0.5, description="of the training speakers, for early stopping")
    eval_seconds: float = Field(60.0, gt=0, description="audio seconds per inference batch")
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"
    checkpoint_dir: str = Field("checkpoints/finetune", description="per-epoch checkpoints, so a fold resumes")


def space(trial: optuna.Trial) -> dict:
    return {"backbone_lr": trial.suggest_float("backbone_lr", 1e-5, 2e-4, log=True),
            "head_lr": trial.suggest_float("head_lr", 3e-4, 3e-3, log=True),
            "alpha_asr": trial.suggest_categorical("alpha_asr", [0.0, 0.1, 0.3])}


def check(params: AllParams) -> None:
    """Fails in seconds, at load_params: fine-tuning needs an encoder to train."""
    from ser.finetune.network import BACKBONES

    if params.features.extractor not in BACKBONES:
        raise ValueError(f"classifier finetune trains an encoder: set features.extractor to {' or '.join(BACKBONES)} "
                         f"(it is {params.features.extractor}) and features.model to its checkpoint")
    if params.trust.novelty not in ("auto", "msp"):
        raise ValueError(f"trust.novelty: {params.trust.novelty} scores feature vectors, and classifier finetune reads "
                         "audio: set trust.novelty: auto or msp (one minus the top class probability)")


def build(params: AllParams, seed: int = 0) -> FineTuner:
    from ser.finetune.estimator import FineTuner

    f = params.features
    return FineTuner(params.finetune.model_dump(), {"extractor": f.extractor, "model": f.model,
                                                    "default_preprocessor": f.default_preprocessor}, seed)
