"""What the neural extractors (ssl, whisper) share: the device and dtype, layer selection, pooling over
real (never padded) frames, and the batch loop around a model (:class:`NeuralEncoder`)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from ser.errors import ConfigError
from ser.features.checkpoints import fingerprint, load_pretrained

log = logging.getLogger(__name__)
T = TypeVar("T")


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA, then Apple MPS, then CPU; a named device that is missing is a ConfigError."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if cuda else "mps" if mps else "cpu"
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ConfigError(f"features.device: {name!r} is not available on this machine; use auto or cpu")
    return torch.device(name)


class HeapTrimmer:
    """Keeps resident memory flat over thousands of batches (call ``after_batch`` after each one).

    Batches of ever new shapes fragment glibc's heap: freed activations stay resident and memory
    creeps up batch after batch (WavLM-Large on CPU: +0.6 GB over 80 clips). When resident memory
    has grown ``slack_mb`` above what it was after the first batch, the free heap is handed back to
    the system (``malloc_trim``). Trimming after every batch would cost ~7% of the speed, and forcing
    every large block into mmap ~16%; this costs nothing while memory stays put. No-op off glibc.
    """

    def __init__(self, slack_mb: int = 256):
        self.slack = slack_mb << 20
        self.base: int | None = None
        self.trim = None
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):
                self.trim = ctypes.CDLL("libc.so.6").malloc_trim

    @staticmethod
    def resident() -> int:
        """Resident bytes of this process."""
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def after_batch(self) -> None:
        if self.trim is None:
            return
        if self.base is None:
            self.base = self.resident()
        elif self.resident() > self.base + self.slack:
            self.trim(0)


def dtype_for(device: torch.device) -> torch.dtype:
    """fp16 on CUDA (about twice as fast, same embeddings to ~1e-3), fp32 elsewhere."""
    return torch.float16 if device.type == "cuda" else torch.float32


def select_layers(layers: str | int | list[int], n_states: int) -> tuple[list[int], bool]:
    """Hidden-state indices for ``features.layers`` and whether to average them (``mean``).

    Index 0 is the input to the first transformer layer, i the output of layer i, and L (= -1 =
    ``last``) the model's final output, after its final layer norm where it has one; ``mean``
    averages the outputs of every transformer layer, 1..L; ``all`` is 0..L. A list's pooled vectors
    are concatenated in its order (as frames: stacked on the layer axis).
    """
    if layers == "mean":
        return list(range(1, n_states)), True
    if layers == "all":
        return list(range(n_states)), False
    wanted = [-1] if layers == "last" else [layers] if isinstance(layers, int) else list(layers)
    bad = [i for i in wanted if not -n_states <= i < n_states]
    if bad:
        raise ConfigError(f"features.layers: {bad} out of range: this model has {n_states - 1} layers, so indices "
                          f"run from 0 (input to the first layer) to {n_states - 1} (or -{n_states} to -1)")
    return [i % n_states for i in wanted], False


def pool(states: Sequence[torch.Tensor] | dict[int, torch.Tensor], mask: torch.Tensor, indices: list[int],
         average: bool, pooling: str) -> np.ndarray | list[np.ndarray]:
    """Pool hidden states (each (batch, frames, dim)) over the frames where ``mask`` is True.

    Padded frames never count; the result is float32 (batch, dim * len(indices)) or, when
    ``average``, (batch, dim); ``mean_std`` doubles the dim (mean, then standard deviation).
    ``none`` keeps the real frames: per clip a float16 (frames, len(indices) or 1, dim) array.
    """
    if pooling == "none":
        layers = [sum(states[i].float() for i in indices) / len(indices)] if average else [states[i] for i in indices]
        stacked = torch.stack([h.to(torch.float16) for h in layers], 2)  # (batch, frames, layers, dim)
        return [clip[real].cpu().numpy() for clip, real in zip(stacked, mask)]
    return pooled(states, mask, indices, average, pooling).cpu().numpy()


def pooled(states: Sequence[torch.Tensor] | dict[int, torch.Tensor], mask: torch.Tensor, indices: list[int],
           average: bool, pooling: str) -> torch.Tensor:
    """:func:`pool`'s vectors as a float32 tensor (``mean`` or ``mean_std``; what an exported graph computes)."""
    weight = mask[..., None].to(torch.float32)
    count = weight.sum(1).clamp_min(1.0)

    def stats(h: torch.Tensor) -> torch.Tensor:
        h = h.float()
        mean = (h * weight).sum(1) / count
        if pooling == "mean":
            return mean
        var = ((h - mean[:, None]) ** 2 * weight).sum(1) / count
        return torch.cat([mean, var.sqrt()], 1)

    if average:
        return stats(sum(states[i].float() for i in indices) / len(indices))
    return torch.cat([stats(states[i]) for i in indices], 1)


def join_rows(states: Sequence[torch.Tensor], mask: torch.Tensor, counts: list[int], keep: set[int]
              ) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """One row per clip from consecutive rows that are chunks of it (``counts[b]`` rows for clip b).

    The real frames of a clip's rows are concatenated in order, and the clips padded to the longest
    (the new mask marks the real frames). Only the state indices in ``keep`` are joined.
    """
    frames = mask.sum(1).split(counts)
    lengths = torch.stack([f.sum() for f in frames])
    joined = {i: nn.utils.rnn.pad_sequence(states[i][mask].split(lengths.tolist()), batch_first=True)
              for i in sorted(keep)}
    return joined, frame_mask(lengths, int(lengths.max()))


def frame_mask(frames: torch.Tensor, length: int) -> torch.Tensor:
    """(batch, length) bool: True for the first ``frames[b]`` frames of each row."""
    return torch.arange(length, device=frames.device)[None, :] < frames[:, None]


class NeuralEncoder:
    """What the ssl and whisper extractors share: their identity, device and dtype, the checkpoint's
    config, a fingerprint of its weights, and memory that stays flat over thousands of batches.
    A subclass loads its model and implements ``_embed`` (one batch of waves -> pooled vectors)."""

    kind = ""  # the features.extractor name
    sample_rate: int

    def __init__(self, model: str, layers: str | int | list[int], pooling: str, device: str,
                 default_preprocessor: bool = False, trainable: bool = False):
        from transformers import AutoConfig

        self.name, self.layers, self.pooling = model, layers, pooling
        self.default_preprocessor = default_preprocessor
        self.device = pick_device(device)
        # fine-tuning (``trainable``) keeps fp32 weights: mixed precision comes from autocast
        self.dtype = torch.float32 if trainable else dtype_for(self.device)
        self.memory = HeapTrimmer()
        self.config = load_pretrained(AutoConfig.from_pretrained, model)
        self.weights = fingerprint(model)

    def identity(self) -> dict:
        """Not the model's name or folder, the device or the dtype (see :mod:`ser.features`)."""
        from ser.features import identity

        return identity(self.kind, ("torch", "transformers"), weights=self.weights, layers=self.layers,
                        pooling=self.pooling, sample_rate=self.sample_rate)

    def blocks(self) -> dict | None:
        """How a pooled vector splits into layers: ``{"layers": hidden-state index of each block, in vector
        order, "states": hidden states of the model}`` when it joins one block per layer (several layers,
        not averaged, not frames), so train can choose among them (:mod:`ser.models.layer_choice`); else None."""
        if self.pooling == "none" or self.average or len(self.indices) < 2:
            return None
        return {"layers": list(self.indices), "states": self.n_states}

    def transform(self, waves: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        """One pooled vector per wave (a batch of clips), or its frames with ``pooling: none``."""
        vectors = self._embed(waves)
        self.memory.after_batch()
        return vectors

    def _embed(self, waves: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        raise NotImplementedError

    @property
    def module(self) -> nn.Module:
        """The torch module that computes the hidden states (what fine-tuning trains)."""
        raise NotImplementedError

    def states(self, waves: list[np.ndarray]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Every hidden state (index 0 = input to the first layer .. L = the final output), each
        (batch, frames, dim), and the (batch, frames) mask of real frames; with gradients when enabled
        (fine-tuning), and a clip's states never depend on its batch."""
        raise NotImplementedError
