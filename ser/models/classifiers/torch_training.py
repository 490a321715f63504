"""What every PyTorch classifier here shares: seeded deterministic training, balanced class weights,
and the UAR that early stopping watches."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from ser.models.inner_splits import validation_split

log = logging.getLogger(__name__)

# why tune.n_jobs > 1 (trials in threads of one process) is refused for the torch classifiers
NOT_THREAD_SAFE = ("its fits change process-global torch state (the seed, the thread count, deterministic mode), "
                   "so trials in parallel threads would be neither independent nor reproducible")


def balanced_weights(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """n / (k · n_c) per class (0 for a class absent from training), as class_weight='balanced'."""
    counts = np.bincount(codes, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes, np.float32)
    weights[present] = len(codes) / (present.sum() * counts[present])
    return weights


def uar(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Unweighted average recall over the classes present in ``actual``."""
    classes = np.unique(actual)
    return float(np.mean([(predicted[actual == c] == c).mean() for c in classes]))


@contextmanager
def seeded(seed: int, device: str) -> Iterator[None]:
    """Seed torch (without touching the caller's RNG state) and use deterministic algorithms."""
    import torch

    devices = list(range(torch.cuda.device_count())) if device == "cuda" else []
    if devices:  # deterministic cuBLAS; read when cuBLAS starts, i.e. at this process's first CUDA matmul
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)


class EarlyStopping:
    """Keeps the weights of the best epoch so far: the highest validation UAR, ties broken by the lower
    validation loss; without validation (``val_uar`` None) the last epoch. ``update`` says when
    ``patience`` epochs in a row brought no improvement."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best, self.epoch, self.state, self.waited = (-np.inf, -np.inf), 0, None, 0

    def update(self, module, record: dict) -> bool:
        """Note one epoch's ``record`` (epoch, val_uar, val_loss); True when training should stop."""
        scored = record["val_uar"] is not None
        key = (record["val_uar"], -record["val_loss"]) if scored else (record["epoch"], 0.0)
        if key > self.best:
            self.best, self.epoch, self.waited = key, record["epoch"], 0
            self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        else:
            self.waited += 1
        return self.waited >= self.patience

    def epoch_done(self, module, record: dict, history: list[dict], epoch_callback=None) -> bool:
        """Close one epoch: append ``record`` to ``history``, note it (:meth:`update`), report its
        validation UAR to ``epoch_callback(epoch, val_uar)`` (tuning prunes on it); True to stop."""
        history.append(record)
        stop = self.update(module, record)
        if epoch_callback is not None and record["val_uar"] is not None:
            epoch_callback(record["epoch"], record["val_uar"])
        return stop

    def restore(self, module) -> int:
        """Load the best epoch's weights into ``module``; return that epoch."""
        module.load_state_dict(self.state)
        return self.epoch


def early_stopping_split(codes: np.ndarray, groups, clip_ids, aug, fraction: float, seed: int, group: str,
                         max_epochs: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Training rows, validation rows and ``fit_facts`` (what early stopping did) for a classifier of
    params group ``group``: a held-out split by speakers, or by clips when the folds are not by speaker
    (:func:`validation_split`). No validation (train ``max_epochs``) when the fraction is 0, when nothing
    can be held out, or when the folds are by speaker but the training rows hold one speaker: a split of
    that voice's own clips says nothing about new speakers (its UAR reaches 1.0 at once)."""
    reason = f"off: {group}.validation_fraction is 0"
    if fraction > 0:
        try:
            train, val, kind = validation_split(codes, groups, clip_ids, aug, fraction, seed)
            if groups is None or kind == "speakers":
                return train, val, {"early_stopping": f"validation UAR on {len(val)} clips held out by {kind}"}
            reason = (f"off: the training rows hold one speaker, so a validation split would score clips of the "
                      f"voice it trains on ({kind})")
        except ValueError as err:
            reason = f"off: {err}"
        log.warning("%s: no early stopping (%s); training for %d epochs", group, reason.removeprefix("off: "),
                    max_epochs)
    return (np.arange(len(codes)), np.arange(0),
            {"early_stopping": f"{reason}; trained the whole schedule: {max_epochs} epochs"})


def cpu_state(module, prefix: str = "") -> dict:
    """The module's state dict on the CPU, contiguous (what safetensors writes), keys after ``prefix``."""
    return {prefix + k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


class FromLogits:
    """``predict_proba`` (softmax) and ``predict`` of a classifier whose ``_logits(X)`` gives (n, classes)."""

    def predict_proba(self, X) -> np.ndarray:
        logits = self._logits(X).astype(np.float64)
        logits -= logits.max(1, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]


def warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """Learning-rate factor per step: linear from 0 to 1 over ``warmup`` steps, then cosine to 0 at ``total``."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return float(0.5 * (1 + np.cos(np.pi * progress)))  # a plain float: scheduler state saves without pickle
    return factor
