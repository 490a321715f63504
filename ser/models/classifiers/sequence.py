"""The estimator and training recipe shared by the sequence classifiers (``attentive``, ``cnn_bilstm``).

X is a :class:`ser.embeddings.FrameSet` (clips of (frames, layers, dim)); every clip is standardised
per (layer, dim) with statistics of the training frames. Training: class-weighted cross-entropy with
label smoothing, mixup (Beta(alpha, alpha), with a probability per batch), SpecAugment-style time and
feature masks, AdamW, linear warmup then cosine decay per step, gradient clipping, early stopping on
the UAR of a speaker-disjoint validation split (best epoch restored), mixed precision on CUDA.
Seeded and deterministic on the CPU. Batches are drawn from length-sorted buckets, so padding stays
small; padding never changes a prediction (see :mod:`ser.models.classifiers.sequence_layers`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import numpy as np
from pydantic import Field
from sklearn.base import BaseEstimator, ClassifierMixin
from tqdm.auto import tqdm

from ser.models.classifiers.devices import torch_device, use_every_core
from ser.models.classifiers.sequence_inputs import length_buckets, spec_augment, stride_frames
from ser.models.classifiers.torch_training import (  # noqa: F401 - NOT_THREAD_SAFE: read by ser.config
    NOT_THREAD_SAFE,
    EarlyStopping,
    FromLogits,
    balanced_weights,
    early_stopping_split,
    seeded,
    uar,
    warmup_cosine,
)
from ser.section import Section

log = logging.getLogger(__name__)

EVAL_BATCH = 64


class Recipe(Section):
    """The training recipe; each sequence classifier's params group adds its architecture's fields."""

    lr: float = Field(1e-3, gt=0)
    layer_weights_lr: float = Field(1e-2, gt=0, description="learning rate of the layer-weight logits (several layers)")
    weight_decay: float = Field(1e-2, ge=0)
    batch_size: int = Field(32, ge=2)
    # 25 epochs and 4 frames averaged (MFCC: 25 per second, encoders: 12.5) keep 5-fold CV on RAVDESS
    # near 10 minutes on 2 CPU cores (benchmarks/bench_sequence.py)
    max_epochs: int = Field(25, ge=1)
    min_steps: int = Field(0, ge=0, description="at least this many optimizer steps: more epochs on a small corpus")
    patience: int = Field(8, ge=1)
    warmup_epochs: float = Field(2.0, ge=0, description="linear warmup, then cosine decay to 0")
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    mixup_alpha: float = Field(0.4, gt=0)
    mixup_p: float = Field(0.5, ge=0, le=1, description="share of batches mixed")
    time_masks: int = Field(2, ge=0, description="SpecAugment time masks per clip")
    time_mask_fraction: float = Field(0.1, ge=0, lt=1, description="of the clip's frames, at most, per mask")
    feature_masks: int = Field(2, ge=0, description="SpecAugment masks over the feature dim per clip")
    feature_mask_width: int = Field(8, ge=0, description="feature dims, at most, per mask")
    grad_clip: float = Field(1.0, gt=0)
    max_frames: int = Field(1000, ge=10, description="longer training clips are cropped at random to this")
    frame_stride: int = Field(4, ge=1, description="average this many consecutive frames first")
    class_weight: Literal["balanced", "none"] = "balanced"
    validation_fraction: float = Field(0.15, ge=0, lt=0.5, description="of the training speakers, for early stopping")
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"


RECIPE_FIELDS = tuple(Recipe.model_fields)
EpochCallback = Callable[[int, float], None]


class SequenceClassifier(FromLogits, ClassifierMixin, BaseEstimator):
    """``fit(X, y, groups=None, clip_ids=None, aug=None, epoch_callback=None)`` on a FrameSet.

    ``kind`` names the classifier module whose ``network(settings, layers, dim, n_classes)`` builds the
    torch module; ``settings`` is its params group (recipe and architecture). After fitting:
    ``classes_``, ``module_``, ``history_`` (epoch, train_loss, val_loss, val_uar), ``best_epoch_``,
    ``mean_``/``std_`` (input standardisation), ``fit_facts_``.
    """

    def __init__(self, kind: str = "attentive", settings: dict | None = None, random_state: int = 0):
        self.kind = kind
        self.settings = settings
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, groups=None, clip_ids=None, aug=None,
            epoch_callback: EpochCallback | None = None) -> SequenceClassifier:

        self.params_ = s = self._settings()
        y = np.asarray(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        def epochs(rows: int) -> int:  # max_epochs, or more on a small corpus: at least min_steps optimizer steps
            return max(s.max_epochs, -(-s.min_steps // max(1, -(-rows // s.batch_size))))

        train, val, self.fit_facts_ = early_stopping_split(codes, groups, clip_ids, aug, s.validation_fraction,
                                                           self.random_state, self.kind, epochs(len(codes)))
        self.epochs_ = epochs(len(train))
        self.device_ = torch_device(s.device)
        use_every_core(self.device_)
        self._standardise_with(*X[train].moments())
        self.n_layers_, self.dim_ = X.shape[1], X.shape[2]
        with seeded(self.random_state, self.device_):
            self.module_ = self._network().to(self.device_)
            self._train(X.strided(s.frame_stride), codes, train, val, s, epoch_callback)
        return self

    def _settings(self):
        from ser.models import classifiers

        return classifiers.get(self.kind).Params(**(self.settings or {}))

    def _network(self):
        from ser.models import classifiers

        return classifiers.get(self.kind).network(self.params_, self.n_layers_, self.dim_, len(self.classes_))

    def _standardise_with(self, mean: np.ndarray, std: np.ndarray) -> None:
        """The per-(layer, dim) input statistics, and their tensors on ``device_``."""
        import torch

        self.mean_, self.std_ = mean, np.maximum(std, 1e-5)
        self.shift_ = torch.from_numpy(self.mean_).to(self.device_)
        self.scale_ = torch.from_numpy(1 / self.std_).to(self.device_)

    def _inputs(self, X, index, max_frames: int | None = None, rng: np.random.Generator | None = None):
        """Standardised, zero-padded batch tensors (x, lengths) of clips ``index`` on the device."""
        import torch

        x, lengths = X.batch(index, max_frames // X.stride if max_frames else None, rng)
        stride = self.params_.frame_stride // X.stride  # 1 when X was strided in memory already
        x, lengths = stride_frames(torch.from_numpy(x).to(self.device_).float(),
                                   torch.from_numpy(lengths).to(self.device_), stride)
        x.sub_(self.shift_).mul_(self.scale_)
        x.mul_((torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None])[..., None, None])
        return x, lengths

    def _train(self, X, codes: np.ndarray, train: np.ndarray, val: np.ndarray, s, epoch_callback) -> None:
        import torch
        from torch import nn

        dev = self.device_
        rng = np.random.default_rng(self.random_state)
        weight = torch.from_numpy(balanced_weights(codes[train], len(self.classes_))).to(dev) \
            if s.class_weight == "balanced" else None
        loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=s.label_smoothing)
        val_loss_fn = nn.CrossEntropyLoss(weight=weight)
        # the layer-weight logits get their own rate: Adam moves each by about its rate per step, and a few
        # hundred steps at the network's rate leave them near uniform
        layer_logits = [p for name, p in self.module_.named_parameters() if name.startswith("layer_weights.")]
        rest = [p for name, p in self.module_.named_parameters() if not name.startswith("layer_weights.")]
        optimizer = torch.optim.AdamW([{"params": rest}, {"params": layer_logits, "lr": s.layer_weights_lr,
                                                          "weight_decay": 0.0}], lr=s.lr, weight_decay=s.weight_decay)
        steps_per_epoch = max(1, -(-len(train) // s.batch_size))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(
            int(s.warmup_epochs * steps_per_epoch), self.epochs_ * steps_per_epoch))
        amp = dev == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=amp)
        yt = torch.from_numpy(codes).to(dev)
        self.history_, stopping = [], EarlyStopping(s.patience)
        epochs = tqdm(range(1, self.epochs_ + 1), desc=f"{self.kind} epochs", leave=False, disable=None)
        for epoch in epochs:
            self.module_.train()
            total, seen = 0.0, 0
            for index in length_buckets(X.lengths, train, s.batch_size, rng):
                if len(index) < 2:
                    continue
                x, lengths = self._inputs(X, index, s.max_frames, rng)
                x = spec_augment(x, lengths, s, rng)
                target = yt[torch.from_numpy(index).to(dev)]
                with torch.autocast("cuda", enabled=amp):
                    if rng.random() < s.mixup_p:
                        lam = float(rng.beta(s.mixup_alpha, s.mixup_alpha))
                        perm = torch.from_numpy(rng.permutation(len(index))).to(dev)
                        x, lengths_mixed = lam * x + (1 - lam) * x[perm], torch.maximum(lengths, lengths[perm])
                        logits = self.module_(x, lengths_mixed)
                        loss = lam * loss_fn(logits, target) + (1 - lam) * loss_fn(logits, target[perm])
                    else:
                        loss = loss_fn(self.module_(x, lengths), target)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(self.module_.parameters(), s.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                total, seen = total + float(loss.detach()) * len(index), seen + len(index)
            record = {"epoch": epoch, "train_loss": total / max(seen, 1), "val_loss": None, "val_uar": None}
            if len(val):
                logits = torch.from_numpy(self._logits(X, val)).to(dev)
                record["val_loss"] = float(val_loss_fn(logits, yt[torch.from_numpy(val).to(dev)]))
                record["val_uar"] = uar(codes[val], logits.argmax(1).cpu().numpy())
                epochs.set_postfix(val_uar=f"{record['val_uar']:.3f}")
            if stopping.epoch_done(self.module_, record, self.history_, epoch_callback):
                break
        self.best_epoch_ = stopping.restore(self.module_)
        self.module_.eval()
        if self.n_layers_ > 1:  # what the model learned about the encoder's layers, for cv.json and the plot
            self.fit_facts_["layer_weights"] = [round(w, 4) for w in self.module_.layer_weights.weights()]
        log.info("%s: %d epochs, best epoch %d (validation UAR %s on %d clips), trained on %d clips", self.kind,
                 len(self.history_), self.best_epoch_,
                 "n/a" if self.history_[self.best_epoch_ - 1]["val_uar"] is None
                 else f"{self.history_[self.best_epoch_ - 1]['val_uar']:.3f}", len(val), len(train))

    # ------------------------------------------------------------------ prediction
    def _logits(self, X, rows: np.ndarray | None = None) -> np.ndarray:
        import torch

        rows = np.arange(len(X)) if rows is None else rows
        order = rows[np.argsort(X.lengths[rows], kind="stable")]
        out = np.zeros((len(rows), len(self.classes_)), np.float32)
        where = {r: i for i, r in enumerate(rows)}
        self.module_.eval()
        with torch.no_grad():
            for start in range(0, len(order), EVAL_BATCH):
                index = order[start:start + EVAL_BATCH]
                x, lengths = self._inputs(X, index)
                logits = self.module_(x, lengths).float().cpu().numpy()
                out[[where[r] for r in index]] = logits
        return out
