"""``attentive``: learned layer weights, a projection, attentive statistics pooling and an MLP head,
over frame sequences (``features.pooling: none``, ideally ``features.layers: all``).

The SUPERB-style weighted sum learns which encoder layers carry emotion instead of a hand-picked
layer; the learned weights are written to results/cv.json (``layer_weights``) and plotted. Training
recipe: :mod:`ser.models.classifiers.sequence`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from ser.models.classifiers.sequence import NOT_THREAD_SAFE, Recipe, SequenceClassifier  # noqa: F401
from ser.models.classifiers.sequence_files import load, save  # noqa: F401

if TYPE_CHECKING:
    import optuna
    from torch import nn

    from ser.config import Params as AllParams

TAKES_FRAMES = True
SPACE_VERSION = 1  # bump when space() changes, so old studies are not resumed


class Params(Recipe):
    """params.yaml ``attentive``."""

    # decided on the four shared corpora (docs/classifiers.md): early stopping on a validation split of a few
    # speakers stopped at noise (URDU 0.62 against 0.72 without it, EMOVO 0.41 against 0.47), and a corpus of
    # a few hundred clips needs more than 25 epochs' steps: the whole warmup-cosine schedule, at least 1000 steps
    validation_fraction: float = Field(0.0, ge=0, lt=0.5, description="of the training speakers, for early stopping "
                                       "(0: none, the whole schedule is trained)")
    min_steps: int = Field(1000, ge=0, description="at least this many optimizer steps: more epochs on a small corpus")
    projection: int = Field(256, ge=8, description="width of the per-frame projection")
    attention_hidden: int = Field(128, ge=8)
    hidden: int = Field(256, ge=8, description="width of the MLP head")
    dropout: float = Field(0.2, ge=0, lt=1)


def space(trial: optuna.Trial) -> dict:
    return {"lr": trial.suggest_float("lr", 1e-4, 3e-3, log=True),
            "projection": trial.suggest_categorical("projection", [128, 256, 512]),
            "dropout": trial.suggest_float("dropout", 0.1, 0.5),
            "mixup_p": trial.suggest_categorical("mixup_p", [0.0, 0.5, 1.0])}


def build(params: AllParams, seed: int = 0) -> SequenceClassifier:
    return SequenceClassifier("attentive", params.attentive.model_dump(), seed)


def network(p: Params, layers: int, dim: int, n_classes: int) -> nn.Module:
    from torch import nn

    from ser.models.classifiers.sequence_layers import AttentiveStatsPool, LayerWeights, frame_mask

    class Attentive(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer_weights = LayerWeights(layers)
            self.project = nn.Sequential(nn.Linear(dim, p.projection), nn.ReLU(), nn.Dropout(p.dropout))
            self.pool = AttentiveStatsPool(p.projection, p.attention_hidden)
            self.head = nn.Sequential(nn.Linear(2 * p.projection, p.hidden), nn.ReLU(), nn.Dropout(p.dropout),
                                      nn.Linear(p.hidden, n_classes))

        def forward(self, x, lengths):
            h = self.project(self.layer_weights(x))
            return self.head(self.pool(h, frame_mask(lengths, x.shape[1])))

    return Attentive()
