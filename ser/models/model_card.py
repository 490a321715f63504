"""models/model.json: the one typed description of a trained model folder.

Written whole (atomically) by ``ser.models.train.train``, read by predict: the labels, the identity of the
feature vectors and the params to rebuild their extractor, the training windows for long recordings, the
temperature calibration, the novelty threshold (open-set rejection) and where the model came from. A card
that is missing, invalid or of an older format is refused with a message that says to retrain.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ser.artifacts import write_json
from ser.errors import ModelError

CARD_VERSION = 2  # bump when a field changes meaning; predict refuses other versions
CARD = "model.json"
RETRAIN = "retrain (dvc repro train) to write a current one"


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Windows(_Part):
    """How predict cuts recordings longer than training clips (``ser.inference.segment.training_window``)."""

    max_clip_seconds: float = Field(gt=0)  # the longest training clip: longer recordings are cut
    median_clip_seconds: float = Field(gt=0)  # ... into windows about this long


class Candidate(_Part):
    """The temperature fit on all out-of-fold rows and its cross-fitted ECE and NLL."""

    temperature: float = Field(gt=0, allow_inf_nan=False)
    ece: float
    nll: float


class Calibration(_Part):
    """What predict applies to the classifier's probabilities, as chosen by
    ``ser.models.calibration.calibrate_oof``: a temperature, or none (temperature 1)."""

    method: Literal["temperature", "none"]
    temperature: float = Field(gt=0, allow_inf_nan=False)
    reason: str
    candidate: Candidate
    n: int
    bins: int
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    accuracy: float
    protocol: str
    fold_temperatures: dict[str, float]


class NoveltyCard(_Part):
    """The open-set rejection predict applies (``ser.trust``): a score above ``threshold`` is ``unknown``."""

    method: str
    threshold: float = Field(allow_inf_nan=False)
    false_rejection_target: float
    false_rejection_cross_fitted: float | None  # None: one fold evaluated, not measurable
    knn_k: int
    fitted_on: int
    speech_threshold: float | None = None  # trust.speech: a window whose Silero speech presence is below it is unknown
    applies: bool = True  # whether predict rejects above ``threshold`` (trust.novelty_gate; set on held-out corpora)
    threshold_from: str = "held-out speakers"


class LayerChoiceCard(_Part):
    """The encoder layers the classifier reads, chosen on the training clips (:mod:`ser.models.layer_choice`):
    ``chosen`` is ``feature_params.features.layers``, best first."""

    candidates: list[int]
    chosen: list[int]
    inner_uar: dict[str, float]  # per candidate layer; empty when every candidate was used
    settings: dict[str, dict[str, Any]] = {}  # per chosen layer, its best of select.grid (none without a grid)
    how: str


class TrainingContext(_Part):
    dataset: str
    rows: int
    clips: int
    protocol: str


class ModelCard(_Part):
    """Everything predict needs besides the classifier's own files."""

    card_version: Literal[2] = CARD_VERSION
    classifier: str
    labels: list[str] = Field(min_length=2)
    dim: int = Field(gt=0)
    identity: dict[str, Any]  # ser.features.identity of the training vectors
    feature_params: dict[str, Any]  # the features and data sections that rebuild their extractor
    params: dict[str, Any]  # the final classifier's hyperparameters
    tuned: bool
    windows: Windows
    calibration: Calibration
    novelty: NoveltyCard
    trained_on: TrainingContext
    layer_choice: LayerChoiceCard | None = None  # None: the features are one vector the classifier reads whole


def write(folder: str | Path, card: ModelCard) -> Path:
    """``folder``/model.json, complete or not at all."""
    return write_json(Path(folder) / CARD, card.model_dump(mode="json"))


def read(folder: str | Path) -> ModelCard:
    """The card of ``folder``; ModelError when the folder or its card is missing, invalid or older."""
    folder = Path(folder)
    path = folder / CARD
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} not found: train a model first (dvc repro train) or pass --models")
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        fix = "export it again: python -m stages.export" if (folder / "bundle.json").is_file() else "dvc repro train"
        raise ModelError(f"{path} not found: {folder} holds no trained model ({fix})") from None
    except json.JSONDecodeError as err:
        raise ModelError(f"{path} is not valid JSON ({err}): {RETRAIN}") from None
    version = raw.get("card_version") if isinstance(raw, dict) else None
    if version != CARD_VERSION:
        raise ModelError(f"{path} is a model card of format {version or 'before versions'}, this code reads "
                         f"format {CARD_VERSION}: {RETRAIN}")
    try:
        return ModelCard.model_validate(raw)
    except ValidationError as err:
        raise ModelError(f"{path} is not a valid model card: {RETRAIN}\n{err}") from None


def check_identity(built: dict, stored: dict, folder: str | Path) -> None:
    """ModelError naming each field where the rebuilt extractor's identity differs from the training one."""
    built, stored = _plain(built), _plain(stored)
    if built == stored:
        return
    diff = [f"{k}: trained {stored.get(k, '(absent)')!r}, rebuilt {built.get(k, '(absent)')!r}"
            for k in sorted(set(built) | set(stored)) if built.get(k) != stored.get(k)]
    raise ModelError(f"{folder}: the model was trained on other features than this code computes from its "
                     "feature_params; refusing to predict with mismatched features:\n  " + "\n  ".join(diff)
                     + "\nRetrain (dvc repro), or point --models (or --encoder) at the matching folder.")


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
