"""A PyTorch MLP behind the scikit-learn classifier interface.

Hidden layers Linear -> BatchNorm -> ReLU -> Dropout (512-256-128 by default), AdamW, class-weighted
cross-entropy, early stopping on the UAR of a speaker-disjoint validation split of the training
rows (whose augmented copies are left out of training), best epoch's weights restored. Seeded and
deterministic on the CPU; runs on CUDA, Apple MPS or CPU (``device: auto``). On CUDA cuBLAS is made
deterministic, but some kernels (e.g. the weighted loss) have no deterministic version: torch warns,
and GPU runs may differ in the last digits.

Saved as safetensors (weights) + JSON (settings, classes, scaler, history): loading executes no
code and rebuilds an estimator that predicts identically. torch is imported where it is used, so
that reading params.yaml (which validates :class:`Params`) does not load it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from pydantic import Field
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data
from tqdm.auto import tqdm

from ser.artifacts import read_json, write_json
from ser.models.classifiers import scaler_json
from ser.models.classifiers.devices import torch_device, torch_threads
from ser.models.classifiers.torch_training import (  # noqa: F401 - NOT_THREAD_SAFE: read by ser.config
    NOT_THREAD_SAFE,
    EarlyStopping,
    balanced_weights,
    cpu_state,
    early_stopping_split,
    seeded,
    uar,
)
from ser.section import Section

if TYPE_CHECKING:
    import optuna
    import torch
    from torch import nn

    from ser.config import Params as AllParams

log = logging.getLogger(__name__)

WEIGHTS_FILE = "mlp.safetensors"
CONFIG_FILE = "mlp.json"
EVAL_BATCH = 8192
SPACE_VERSION = 1  # bump when space() changes, so old studies are not resumed
EpochCallback = Callable[[int, float], None]


class Params(Section):
    """params.yaml ``mlp``."""

    hidden: list[Annotated[int, Field(ge=1)]] = Field([512, 256, 128], min_length=2, max_length=5)
    dropout: float = Field(0.3, ge=0, lt=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(64, ge=2)
    max_epochs: int = Field(100, ge=1)
    patience: int = Field(15, ge=1)
    validation_fraction: float = Field(0.15, ge=0, lt=0.5, description="of the training speakers, for early stopping")
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"


def space(trial: optuna.Trial) -> dict:
    """Optuna's overrides of ``mlp``. Widths halve from the first layer down (512 x 3 layers = the
    default 512-256-128)."""
    layers = trial.suggest_int("layers", 2, 5)
    units = trial.suggest_int("units", 128, 1024, log=True)
    return {"lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64]),
            "hidden": [max(32, units >> i) for i in range(layers)],
            "dropout": trial.suggest_float("dropout", 0.1, 0.5)}


def build(params: AllParams, seed: int = 0) -> Pipeline:
    """StandardScaler + MLP; all refit on each training fold."""
    p = params.mlp
    mlp = TorchMLPClassifier(hidden=tuple(p.hidden), dropout=p.dropout, lr=p.lr, weight_decay=p.weight_decay,
                             batch_size=p.batch_size, max_epochs=p.max_epochs, patience=p.patience,
                             validation_fraction=p.validation_fraction, device=p.device, random_state=seed)
    return Pipeline([("scaler", StandardScaler()), ("mlp", mlp)])


def network(n_features: int, hidden: tuple[int, ...], n_classes: int, dropout: float) -> nn.Sequential:
    """[Linear -> BatchNorm1d -> ReLU -> Dropout] per hidden layer, then a linear output layer."""
    from torch import nn

    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_features, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout)]
        n_features = width
    layers.append(nn.Linear(n_features, n_classes))
    return nn.Sequential(*layers)


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """MLP classifier; ``fit(X, y, groups=None, clip_ids=None, aug=None, epoch_callback=None)``.

    ``groups`` (speakers) make the early-stopping validation split speaker-disjoint; without them it
    holds out whole clips (``clip_ids``), else rows. Rows with ``aug > 0`` are never scored and copies
    of a validation clip are never trained on. ``epoch_callback(epoch, val_uar)`` is called after
    every epoch (tuning uses it to prune). After fitting: ``classes_``, ``module_``, ``history_``
    (per epoch: epoch, train_loss, val_loss, val_uar), ``best_epoch_``, ``device_``, and the rows of X
    trained on and scored for early stopping (``train_rows_``, ``validation_rows_``).
    """

    def __init__(self, hidden: tuple[int, ...] = (512, 256, 128), dropout: float = 0.3, lr: float = 1e-3,
                 weight_decay: float = 1e-4, batch_size: int = 64, max_epochs: int = 100, patience: int = 15,
                 validation_fraction: float = 0.15, class_weight: str | None = "balanced", device: str = "auto",
                 random_state: int = 0):
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.class_weight = class_weight
        self.device = device
        self.random_state = random_state

    def fit(self, X, y, groups=None, clip_ids=None, aug=None,
            epoch_callback: EpochCallback | None = None) -> TorchMLPClassifier:
        import torch

        X, y = validate_data(self, X, y, dtype=np.float32)
        self.classes_, codes = np.unique(y, return_inverse=True)
        self.train_rows_, self.validation_rows_ = train, val = self._split(codes, groups, clip_ids, aug)
        self.device_ = torch_device(self.device)
        if self.device_ == "cpu" and torch.get_num_threads() != torch_threads():
            torch.set_num_threads(torch_threads())
        with seeded(self.random_state, self.device_):
            self.module_ = network(X.shape[1], tuple(self.hidden), len(self.classes_), self.dropout).to(self.device_)
            self._train(X, codes, train, val, epoch_callback)
        return self

    def predict_proba(self, X) -> np.ndarray:
        import torch

        check_is_fitted(self, "module_")
        X = validate_data(self, X, reset=False, dtype=np.float32)
        self.module_.eval()
        with torch.no_grad():
            logits = self._logits(torch.from_numpy(np.ascontiguousarray(X)).to(self.device_))
            return torch.softmax(logits, 1).cpu().double().numpy()  # MPS has no float64: convert on the CPU

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]

    def _split(self, codes: np.ndarray, groups, clip_ids, aug) -> tuple[np.ndarray, np.ndarray]:
        train, val, self.fit_facts_ = early_stopping_split(codes, groups, clip_ids, aug, self.validation_fraction,
                                                           self.random_state, "mlp", self.max_epochs)
        return train, val

    def _logits(self, X: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.cat([self.module_(X[i:i + EVAL_BATCH]) for i in range(0, len(X), EVAL_BATCH)])

    def _train(self, X: np.ndarray, codes: np.ndarray, train: np.ndarray, val: np.ndarray,
               epoch_callback: EpochCallback | None) -> None:
        import torch
        from torch import nn

        dev = self.device_
        Xt, yt = torch.from_numpy(np.ascontiguousarray(X)).to(dev), torch.from_numpy(codes).to(dev)
        val_rows = torch.from_numpy(val).to(dev)
        rows = torch.from_numpy(train).to(dev)
        weight = None
        if self.class_weight == "balanced":
            weight = torch.from_numpy(balanced_weights(codes[train], len(self.classes_))).to(dev)
        loss_fn = nn.CrossEntropyLoss(weight=weight)
        optimizer = torch.optim.AdamW(self.module_.parameters(), lr=self.lr, weight_decay=self.weight_decay,
                                      fused=True)  # one kernel for all tensors: 3x faster steps on CPU
        shuffle = torch.Generator().manual_seed(self.random_state)
        self.history_, stopping = [], EarlyStopping(self.patience)
        epochs = tqdm(range(1, self.max_epochs + 1), desc="MLP epochs", leave=False, disable=None)
        for epoch in epochs:
            self.module_.train()
            order = rows[torch.randperm(len(rows), generator=shuffle).to(dev)]
            total, seen = torch.zeros((), device=dev), 0
            for start in range(0, len(order), self.batch_size):
                batch = order[start:start + self.batch_size]
                if len(batch) < 2:  # BatchNorm needs two rows
                    continue
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(self.module_(Xt[batch]), yt[batch])
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(batch)
                seen += len(batch)
            record = {"epoch": epoch, "train_loss": float(total) / max(seen, 1), "val_loss": None, "val_uar": None}
            if len(val):
                self.module_.eval()
                with torch.no_grad():
                    logits = self._logits(Xt[val_rows])
                    record["val_loss"] = float(loss_fn(logits, yt[val_rows]))
                record["val_uar"] = uar(codes[val], logits.argmax(1).cpu().numpy())
                epochs.set_postfix(val_uar=f"{record['val_uar']:.3f}")
            if stopping.epoch_done(self.module_, record, self.history_, epoch_callback):
                break
        self.best_epoch_ = stopping.restore(self.module_)
        self.module_.eval()
        best_uar = self.history_[self.best_epoch_ - 1]["val_uar"]
        log.info("MLP: %d epochs, best epoch %d (validation UAR %s on %d clips), trained on %d rows",
                 len(self.history_), self.best_epoch_, "n/a" if best_uar is None else f"{best_uar:.3f}",
                 len(val), len(train))


def save(model: Pipeline, folder: Path) -> Path:
    """``mlp.safetensors`` (weights) + ``mlp.json`` (settings, classes, scaler, training history)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    scaler, mlp = model[0], model[-1]
    save_file(cpu_state(mlp.module_), folder / WEIGHTS_FILE)
    write_json(folder / CONFIG_FILE, {
        "params": {**mlp.get_params(), "hidden": list(mlp.hidden)},
        "classes": mlp.classes_.tolist(),
        "n_features_in": int(mlp.n_features_in_),
        "best_epoch": mlp.best_epoch_,
        "history": mlp.history_,
        "scaler": scaler_json.to_dict(scaler),
    })
    return folder / WEIGHTS_FILE


def load(folder: Path) -> Pipeline:
    from safetensors.torch import load_file

    folder = Path(folder)
    config = read_json(folder / CONFIG_FILE)
    mlp = TorchMLPClassifier(**{**config["params"], "hidden": tuple(config["params"]["hidden"])})
    mlp.classes_ = np.asarray(config["classes"])
    mlp.n_features_in_ = config["n_features_in"]
    mlp.best_epoch_, mlp.history_ = config["best_epoch"], config["history"]
    try:
        mlp.device_ = torch_device(mlp.device)
    except ValueError:  # trained on a GPU this machine does not have
        mlp.device_ = "cpu"
    mlp.module_ = network(mlp.n_features_in_, mlp.hidden, len(mlp.classes_), mlp.dropout)
    mlp.module_.load_state_dict(load_file(folder / WEIGHTS_FILE))
    mlp.module_.to(mlp.device_).eval()
    return Pipeline([("scaler", scaler_json.from_dict(config["scaler"])), ("mlp", mlp)])
