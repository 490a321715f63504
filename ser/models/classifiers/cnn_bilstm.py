"""``cnn_bilstm``: the Tier-1 model of the two-tier SER system, over frame sequences (MFCC frames, or any
encoder's, ``features.pooling: none``).

Channel attention over the input coefficients (average- and max-pooled streams), a Conv1d stem and
residual depthwise-separable blocks (``channels``, 128 -> 256 by default, each halving time), a
2-layer bidirectional LSTM, multi-head attention pooling over time and a classification head. With
several encoder layers in the input, learned layer weights come first. Training recipe:
:mod:`ser.models.classifiers.sequence`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

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
    """params.yaml ``cnn_bilstm``."""

    channels: list[Annotated[int, Field(ge=8)]] = Field([128, 256], min_length=1, max_length=4)
    kernel: int = Field(5, ge=1)
    lstm_hidden: int = Field(128, ge=8, description="per direction")
    lstm_layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1, description="attention pooling heads")
    hidden: int = Field(256, ge=8, description="width of the classification head")
    dropout: float = Field(0.3, ge=0, lt=1)
    max_epochs: int = Field(40, ge=1, description="more than the recipe's: this network learns from scratch")
    patience: int = Field(12, ge=1)


def space(trial: optuna.Trial) -> dict:
    return {"lr": trial.suggest_float("lr", 1e-4, 3e-3, log=True),
            "lstm_hidden": trial.suggest_categorical("lstm_hidden", [64, 128, 256]),
            "dropout": trial.suggest_float("dropout", 0.1, 0.5),
            "mixup_p": trial.suggest_categorical("mixup_p", [0.0, 0.5, 1.0])}


def build(params: AllParams, seed: int = 0) -> SequenceClassifier:
    return SequenceClassifier("cnn_bilstm", params.cnn_bilstm.model_dump(), seed)


def network(p: Params, layers: int, dim: int, n_classes: int) -> nn.Module:
    from torch import nn

    from ser.models.classifiers.sequence_layers import (
        ChannelAttention,
        LayerWeights,
        MultiHeadAttentionPool,
        SeparableBlock,
        frame_mask,
        halve,
    )

    class CnnBiLstm(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer_weights = LayerWeights(layers)
            self.attend = ChannelAttention(dim)
            self.stem = nn.Conv1d(dim, p.channels[0], p.kernel, padding=p.kernel // 2)
            widths = [p.channels[0], *p.channels]
            self.blocks = nn.ModuleList(SeparableBlock(a, b, p.kernel, p.dropout / 2)
                                        for a, b in zip(widths[:-1], widths[1:]))
            self.lstm = nn.LSTM(p.channels[-1], p.lstm_hidden, p.lstm_layers, batch_first=True, bidirectional=True,
                                dropout=p.dropout if p.lstm_layers > 1 else 0.0)
            self.pool = MultiHeadAttentionPool(2 * p.lstm_hidden, p.heads)
            self.head = nn.Sequential(nn.Dropout(p.dropout), nn.Linear(2 * p.lstm_hidden * p.heads, p.hidden),
                                      nn.ReLU(), nn.Dropout(p.dropout), nn.Linear(p.hidden, n_classes))

        def forward(self, x, lengths):
            mask = frame_mask(lengths, x.shape[1])
            h = self.attend(self.layer_weights(x), mask) * mask[..., None]
            h = torch.relu(self.stem(h.transpose(1, 2))) * mask[:, None]
            for block in self.blocks:
                h, lengths = halve(block(h, frame_mask(lengths, h.shape[2])), lengths)
            packed = nn.utils.rnn.pack_padded_sequence(h.transpose(1, 2), lengths.cpu(), batch_first=True,
                                                       enforce_sorted=False)
            out, _ = self.lstm(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=h.shape[2])
            return self.head(self.pool(out, frame_mask(lengths, out.shape[1])))

    import torch

    return CnnBiLstm()
