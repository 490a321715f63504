"""Building blocks of the sequence classifiers, all padding-aware: a padded frame never changes what a
real frame gives (padded positions are zeroed before every convolution, excluded from every pooling,
and skipped by the LSTM), so a clip alone and in a padded batch get the same output.

Shapes: x is (batch, frames, layers, dim) or (batch, frames, dim); ``mask`` (batch, frames) is True
on real frames.
"""

from __future__ import annotations

import torch
from torch import nn


def frame_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over frames (dim 1) of (batch, frames, ...) scores, padded frames weighted 0."""
    while mask.dim() < scores.dim():
        mask = mask.unsqueeze(-1)
    return torch.softmax(scores.masked_fill(~mask, torch.finfo(scores.dtype).min), dim=1)


class LayerWeights(nn.Module):
    """SUPERB's weighted sum of hidden layers: softmax-normalised learned weights, one per layer."""

    def __init__(self, layers: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, L, D) -> (B, T, D)
        return torch.matmul(torch.softmax(self.logits, 0), x)  # (L) @ (B, T, L, D) -> (B, T, D)

    def weights(self) -> list[float]:
        return torch.softmax(self.logits.detach().float(), 0).cpu().tolist()


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling (Okabe et al., 2018): attention-weighted mean and standard
    deviation over the real frames."""

    def __init__(self, dim: int, hidden: int = 128):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, 2D)
        w = masked_softmax(self.score(h), mask)
        mean = (w * h).sum(1)
        var = (w * (h - mean[:, None]) ** 2).sum(1)
        return torch.cat([mean, var.clamp_min(1e-6).sqrt()], 1)


class MultiHeadAttentionPool(nn.Module):
    """``heads`` learned attention distributions over the real frames; their weighted sums concatenated."""

    def __init__(self, dim: int, heads: int = 4):
        super().__init__()
        self.score = nn.Linear(dim, heads)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, heads * D)
        w = masked_softmax(self.score(h), mask)  # (B, T, heads)
        return torch.einsum("bth,btd->bhd", w, h).flatten(1)


class ChannelAttention(nn.Module):
    """Two-stream channel attention over the input coefficients (as CBAM's channel branch): a shared MLP
    of the average- and max-pooled (real frames only) channels, summed, through a sigmoid."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(4, channels // reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        m = mask[..., None]
        avg = (x * m).sum(1) / m.sum(1).clamp_min(1)
        peak = x.masked_fill(~m, torch.finfo(x.dtype).min).amax(1)
        return x * torch.sigmoid(self.mlp(avg) + self.mlp(peak))[:, None]


class MaskedBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over (B, C, T) whose batch statistics count real frames only (padding would pull
    them towards zero); in eval mode the running statistics, as usual."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        real = x.transpose(1, 2)[mask]  # (real frames, C)
        mean, var = real.mean(0), real.var(0, unbiased=False)
        with torch.no_grad():
            n = real.shape[0]
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * n / max(n - 1, 1), self.momentum)
            self.num_batches_tracked += 1
        x = (x - mean[None, :, None]) / torch.sqrt(var[None, :, None] + self.eps)
        return x * self.weight[None, :, None] + self.bias[None, :, None]


class SeparableBlock(nn.Module):
    """Residual block of two depthwise-separable Conv1d (depthwise k, then pointwise), each followed
    by batch normalisation over the real frames (:class:`MaskedBatchNorm`)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 5, dropout: float = 0.1):
        super().__init__()
        self.depth1 = nn.Conv1d(c_in, c_in, kernel, padding=kernel // 2, groups=c_in)
        self.point1 = nn.Conv1d(c_in, c_out, 1)
        self.depth2 = nn.Conv1d(c_out, c_out, kernel, padding=kernel // 2, groups=c_out)
        self.point2 = nn.Conv1d(c_out, c_out, 1)
        self.norm1, self.norm2 = MaskedBatchNorm(c_out), MaskedBatchNorm(c_out)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, C, T), padding zero
        m = mask[:, None].to(x.dtype)
        h = self.drop(torch.relu(self.norm1(self.point1(self.depth1(x)), mask))) * m
        h = self.norm2(self.point2(self.depth2(h)), mask)
        return torch.relu(h + self.skip(x)) * m


def halve(x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Max-pool (B, C, T) by 2 over time, a window's padded frame never winning; lengths rounded up."""
    mask = frame_mask(lengths, x.shape[2])[:, None]
    pooled = nn.functional.max_pool1d(x.masked_fill(~mask, torch.finfo(x.dtype).min), 2, ceil_mode=True)
    lengths = (lengths + 1) // 2
    return pooled * frame_mask(lengths, pooled.shape[2])[:, None].to(x.dtype), lengths
