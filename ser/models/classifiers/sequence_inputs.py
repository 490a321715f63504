"""Batches and input transforms of the sequence classifiers (batches also for fine-tuning), on padded
(batch, frames, layers, dim) tensors."""

from __future__ import annotations

import numpy as np


def length_buckets(lengths: np.ndarray, rows: np.ndarray, batch_size: int, rng: np.random.Generator
                   ) -> list[np.ndarray]:
    """Shuffled batches of ``rows`` of similar length (``lengths`` indexed by row): buckets of 20
    batches sorted by length, so padding stays small."""
    order = rows[rng.permutation(len(rows))]
    lengths = lengths[order] if len(order) else order
    bucket = 20 * batch_size
    batches = []
    for start in range(0, len(order), bucket):
        part = order[start:start + bucket][np.argsort(lengths[start:start + bucket], kind="stable")]
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def stride_frames(x, lengths, stride: int):
    """Average every ``stride`` consecutive frames (before standardisation; padding is zero, so a clip's
    last, partial group averages the same values alone or in a batch); lengths round up."""
    if stride == 1:
        return x, lengths
    import torch

    frames = -(-x.shape[1] // stride) * stride
    if frames != x.shape[1]:
        x = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, frames - x.shape[1]))
    return x.view(x.shape[0], frames // stride, stride, *x.shape[2:]).mean(2), (lengths + stride - 1) // stride


def spec_augment(x, lengths, s, rng: np.random.Generator):
    """Zero (= the training mean, after standardisation) random spans of each clip's real frames and of
    its feature dims, on every layer: ``time_masks`` spans of up to ``time_mask_fraction`` of the clip,
    ``feature_masks`` spans of up to ``feature_mask_width`` dims."""
    import torch

    keep = np.ones((x.shape[0], x.shape[1], 1, x.shape[3]), np.float32)
    for b, n in enumerate(lengths.cpu().numpy()):
        for _ in range(s.time_masks):
            width = int(rng.integers(0, max(1, int(s.time_mask_fraction * n)) + 1))
            start = int(rng.integers(0, max(1, n - width + 1)))
            keep[b, start:start + width] = 0
        for _ in range(s.feature_masks):
            width = int(rng.integers(0, min(s.feature_mask_width, x.shape[3] - 1) + 1))
            start = int(rng.integers(0, x.shape[3] - width + 1))
            keep[b, :, :, start:start + width] = 0
    return x * torch.from_numpy(keep).to(x.device)
