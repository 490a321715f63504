"""The fine-tuning estimator: ``fit(X, y, groups, clip_ids, aug, texts)`` on the clips' audio (a
:class:`ser.embeddings.FrameSet` of (samples, 1, 1) sequences), ``predict_proba(X)``.

Loss: :mod:`ser.finetune.losses` (a weight of 0 turns its head off; a corpus without transcripts trains
SER only, and ``fit_facts_`` says so). AdamW with one learning rate for the encoder and one for the
heads, warmup then cosine decay per optimizer step, gradient accumulation and clipping, mixed precision
on CUDA, the feature encoder frozen by default, optional gradient checkpointing. Early stopping on the
UAR of a speaker-disjoint validation split restores the best epoch. Every epoch is checkpointed
(:mod:`ser.finetune.checkpoints`) and seeded by (seed, epoch): a fit resumed after an interruption ends
with the weights of one that ran through.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from tqdm.auto import tqdm

from ser.features.audio import AUDIO_RATE
from ser.finetune import text
from ser.finetune.losses import Losses, crops
from ser.models.classifiers.devices import torch_device, use_every_core
from ser.models.classifiers.sequence_inputs import length_buckets
from ser.models.classifiers.torch_training import (
    EarlyStopping,
    FromLogits,
    balanced_weights,
    early_stopping_split,
    seeded,
    uar,
    warmup_cosine,
)

log = logging.getLogger(__name__)
FIT_VERSION = 2  # in every checkpoint key: raise it when a training code change makes finished fits stale


class FineTuner(FromLogits, ClassifierMixin, BaseEstimator):
    """``settings``: the params.yaml ``finetune`` group; ``backbone``: the encoder to train
    (extractor, model, default_preprocessor). After fitting: ``classes_``, ``net_`` (the
    :class:`ser.finetune.network.FineTuneNet`), ``vocab_``, ``history_``, ``best_epoch_``, ``fit_facts_``."""

    def __init__(self, settings: dict | None = None, backbone: dict | None = None, random_state: int = 0):
        self.settings = settings
        self.backbone = backbone
        self.random_state = random_state

    # ------------------------------------------------------------------ building
    def _settings(self):
        from ser.models.classifiers.finetune import Params

        return Params(**(self.settings or {}))

    def _build(self, n_classes: int, trainable: bool = True, model: str | None = None) -> None:
        """``net_`` on ``device_``: the encoder (from ``model``, default the backbone's) and fresh heads."""
        from ser.finetune.network import FineTuneNet, load_backbone

        s, b = self.params_, self.backbone
        self.device_ = torch_device(s.device)
        use_every_core(self.device_)
        encoder = load_backbone(b["extractor"], model or b["model"], self.device_, b.get("default_preprocessor", False),
                                trainable)
        self.net_ = FineTuneNet(encoder, n_classes, len(self.vocab_) if self.vocab_ else 0, s).to(self.device_)

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, groups=None, clip_ids=None, aug=None, texts=None, epoch_callback=None) -> FineTuner:
        self.params_ = s = self._settings()
        y = np.asarray(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        transcripts = [text.normalise(t) for t in texts] if texts is not None else [""] * len(y)
        train, val, self.fit_facts_ = early_stopping_split(codes, groups, clip_ids, aug, s.validation_fraction,
                                                           self.random_state, "finetune", s.max_epochs)
        heard = [transcripts[i] for i in train if transcripts[i]]
        self.vocab_ = text.Vocabulary.of(heard).symbols if heard and s.alpha_asr > 0 else None
        self.fit_facts_["tasks"] = self._tasks(s, len(heard), len(train))
        numpy_state = np.random.get_state()
        try:
            with seeded(self.random_state, torch_device(s.device)):
                self._build(len(self.classes_))
                folder = Path(s.checkpoint_dir) / self._fit_key(X, codes, transcripts, train, val, clip_ids, aug)
                self._train(X, codes, transcripts, train, val, s, folder, epoch_callback)
        finally:
            np.random.set_state(numpy_state)
        self.fit_facts_["layer_weights"] = [round(w, 4) for w in self.net_.ser.layer_weights.weights()]
        return self

    def _tasks(self, s, with_text: int, rows: int) -> dict:
        asr = f"{s.alpha_asr}" if self.vocab_ else (
            "off: finetune.alpha_asr is 0" if s.alpha_asr == 0 else "off: the corpus has no transcripts (text column)")
        if self.vocab_ and with_text < rows:
            asr += f" ({with_text} of {rows} training clips have a transcript)"
        if s.alpha_asr > 0 and not self.vocab_:
            log.warning("finetune: no transcripts in the training clips: training SER only (no CTC head)")
        return {"ser": s.alpha_ser, "asr": asr, "prosody": s.alpha_prosody or "off: finetune.alpha_prosody is 0"}

    def _fit_key(self, X, codes, transcripts, train, val, clip_ids, aug) -> str:
        """Digest of what decides this fit (not where checkpoints live or the device): the audio itself (so its
        preprocessing and augmentation), settings, seed, encoder weights, classes, rows, splits, FIT_VERSION."""
        s = self.params_.model_dump(exclude={"checkpoint_dir", "device"})
        rows = [str(clip_ids[i]) if clip_ids is not None else str(int(X.lengths[i])) for i in range(len(codes))]
        copies = [int(a) for a in aug] if aug is not None else [0] * len(codes)
        facts = {"version": FIT_VERSION, "audio": X.fingerprint(), "settings": s, "seed": self.random_state,
                 "weights": self.net_.encoder.weights,
                 "backbone": self.backbone.get("extractor"), "classes": self.classes_.tolist(),
                 "rows": hashlib.sha1(json.dumps([rows, copies, codes.tolist(), transcripts]).encode()).hexdigest(),
                 "train": train.tolist(), "val": val.tolist()}
        return hashlib.sha1(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def _train(self, X, codes, transcripts, train, val, s, folder: Path, epoch_callback) -> None:
        import torch

        from ser.finetune.checkpoints import Checkpoints
        from ser.finetune.network import prepare_for_training

        dev, net = self.device_, self.net_
        store = Checkpoints(folder)
        progress = store.progress()
        stopping = EarlyStopping(s.patience)
        self.history_ = []
        if progress and progress["finished"]:
            log.info("finetune: this fit finished before (%s): loading its best epoch, not training", folder)
            net.load_state_dict(store.load_best(progress))
            self._finished(progress, net)
            self.fit_facts_["checkpoint"] = f"loaded: finished before ({folder.name})"
            return
        self.fit_facts_["checkpoint"] = f"resumed after epoch {progress['epoch']}" if progress else "trained"
        backbone = prepare_for_training(net, s)
        heads = list(net.heads().parameters())
        optimizer = torch.optim.AdamW([{"params": backbone, "lr": s.backbone_lr}, {"params": heads, "lr": s.head_lr}],
                                      weight_decay=s.weight_decay)
        batches = -(-len(train) // s.batch_size)
        steps = -(-batches // s.accumulate)  # optimizer steps per epoch
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(int(s.warmup_epochs * steps),
                                                                               s.max_epochs * steps))
        amp = dev == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=amp)
        first = 1
        if progress:
            weights, training = store.load_epoch(progress)
            net.load_state_dict(weights)
            optimizer.load_state_dict(training["optimizer"])
            scheduler.load_state_dict(training["scheduler"])
            scaler.load_state_dict(training["scaler"])
            self.history_ = progress["history"]
            stopping.best, stopping.epoch, stopping.waited = tuple(progress["best"]), progress["best_epoch"], \
                progress["waited"]
            stopping.state = {k: v.to(dev) for k, v in store.load_best(progress).items()}
            first = progress["epoch"] + 1
            log.info("finetune: resuming %s after epoch %d", folder, progress["epoch"])
        weight = torch.from_numpy(balanced_weights(codes[train], len(self.classes_))).to(dev) \
            if s.class_weight == "balanced" else None
        losses = self.losses_ = Losses(s, weight, self.vocab_, AUDIO_RATE)
        losses.unalignable.update(progress.get("ctc_unalignable", []) if progress else [])
        yt = torch.from_numpy(codes).to(dev)
        stop = bool(progress) and stopping.waited >= s.patience
        for epoch in range(first, s.max_epochs + 1):
            if stop:
                break
            torch.manual_seed(self.random_state * 1000 + epoch)  # dropout, masking: the same when resumed
            np.random.seed((self.random_state * 1000 + epoch) % 2**32)  # transformers' time masking draws from it
            rng = np.random.default_rng([self.random_state, epoch])
            net.train()
            total, seen = 0.0, 0
            batches = length_buckets(X.lengths, train, s.batch_size, rng)
            optimizer.zero_grad(set_to_none=True)
            for step, index in enumerate(tqdm(batches, desc=f"finetune epoch {epoch}/{s.max_epochs}", leave=False,
                                              disable=None), 1):
                waves, whole = crops(X, index, s.max_seconds, rng)
                with torch.autocast("cuda", enabled=amp):
                    out = net(waves)
                    loss = losses(out, yt[torch.from_numpy(index).to(dev)], waves,
                                  [transcripts[i] if w else "" for i, w in zip(index, whole)], index)
                scaler.scale(loss / s.accumulate).backward()
                if step % s.accumulate == 0 or step == len(batches):
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]],
                                                   s.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                total, seen = total + float(loss.detach()) * len(index), seen + len(index)
            record = {"epoch": epoch, "train_loss": total / max(seen, 1), "val_loss": None, "val_uar": None}
            if len(val):
                logits = torch.from_numpy(self._logits(X, val)).to(dev)
                record["val_loss"] = float(torch.nn.functional.cross_entropy(logits, yt[torch.from_numpy(val).to(dev)],
                                                                             weight=weight))
                record["val_uar"] = uar(codes[val], logits.argmax(1).cpu().numpy())
            improved = stopping.epoch
            stop = stopping.epoch_done(net, record, self.history_, None)
            log.info("finetune epoch %d: train loss %.3f, validation UAR %s", epoch, record["train_loss"],
                     "n/a" if record["val_uar"] is None else f"{record['val_uar']:.3f}")
            store.save_epoch(epoch, net, {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                          "scaler": scaler.state_dict()},
                             self._progress(stopping, epoch), stopping.state if stopping.epoch != improved else None)
            if epoch_callback is not None and record["val_uar"] is not None:
                epoch_callback(epoch, record["val_uar"])
        net.load_state_dict(stopping.state)
        progress = self._progress(stopping, len(self.history_))
        store.finish(progress)
        self._finished(progress, net)

    def _progress(self, stopping: EarlyStopping, epoch: int) -> dict:
        return {"epoch": epoch, "history": self.history_, "best": list(stopping.best), "best_epoch": stopping.epoch,
                "waited": stopping.waited, "ctc_unalignable": sorted(self.losses_.unalignable)}

    def _finished(self, progress: dict, net) -> None:
        self.history_, self.best_epoch_ = progress["history"], progress["best_epoch"]
        left = len(progress.get("ctc_unalignable", []))
        if self.vocab_:  # counted in cv.json, and a warning
            why = "rows (an augmented copy is a row) whose transcript needs more CTC frames than their audio gives"
            self.fit_facts_["ctc_unalignable"] = f"{left} training {why}: not in the CTC loss" if left else "0"
            (log.warning if left else log.debug)("finetune: ctc_unalignable: %d training rows", left)
        net.eval()
        best = self.history_[self.best_epoch_ - 1]["val_uar"] if self.history_ else None
        log.info("finetune: %d epochs, best epoch %d (validation UAR %s)", len(self.history_), self.best_epoch_,
                 "n/a" if best is None else f"{best:.3f}")

    # ------------------------------------------------------------------ prediction
    def _outputs(self, X, rows: np.ndarray, key: str):
        """``key`` output of the network for ``rows``, in their order, batched by ``eval_seconds`` of audio."""
        import torch

        order = rows[np.argsort(X.lengths[rows], kind="stable")]
        where = {r: i for i, r in enumerate(rows)}
        budget = int(self.params_.eval_seconds * AUDIO_RATE)
        out: list = [None] * len(rows)
        was_training = self.net_.training
        self.net_.eval()
        with torch.no_grad():
            start = 0
            while start < len(order):
                stop = start + 1
                while stop < len(order) and (stop + 1 - start) * X.lengths[order[stop]] <= budget:
                    stop += 1
                index = order[start:stop]
                result = self.net_([X.clip(i)[:, 0, 0] for i in index])
                values = result[key].float().cpu().numpy()
                lengths = result["lengths"].cpu().numpy()
                for b, r in enumerate(index):
                    out[where[r]] = values[b] if key == "logits" else values[b, :lengths[b]]
                start = stop
        self.net_.train(was_training)
        return out

    def _logits(self, X, rows: np.ndarray | None = None) -> np.ndarray:
        rows = np.arange(len(X)) if rows is None else np.asarray(rows)
        return np.stack(self._outputs(X, rows, "logits")).astype(np.float32)

    def transcribe(self, X) -> list[str]:
        """Greedy CTC transcripts of the auxiliary ASR head (what it learned; not a speech recogniser)."""
        if self.net_.ctc is None:
            raise ValueError("this model has no CTC head (finetune.alpha_asr was 0, or the corpus had no transcripts)")
        vocab = text.Vocabulary(self.vocab_)
        return [vocab.decode(p.argmax(-1).tolist()) for p in self._outputs(X, np.arange(len(X)), "ctc")]
