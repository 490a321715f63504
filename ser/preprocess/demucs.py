"""Demucs denoiser (Défossez et al., "Real Time Speech Enhancement in the Waveform Domain", 2020): the
causal waveform U-Net of the ``denoiser`` package, whose DNS64 checkpoint is its best model.

Written here from the paper's description with the package's parameter names and defaults, so its
checkpoints load (the package itself pins torch 1.5 and cannot be installed next to this project; its
code and weights are CC BY-NC 4.0, and so non-commercial). The input is normalised by its standard
deviation, upsampled 4x by sinc interpolation, passed through ``depth`` strided Conv1d + GLU encoder
layers, an LSTM (unidirectional when causal) and transposed-convolution decoder layers with skip
connections, downsampled back and rescaled. Runs at 16 kHz; other rates are resampled.

Checkpoints: a state dict saved by ``torch.save`` (read with ``weights_only=True``: no code runs), the
package's serialised form ``{"class", "args", "kwargs", "state"}``, or a ``.safetensors`` file. The
architecture (hidden width, depth) is read from the weights' shapes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

DEMUCS_RATE = 16000


def sinc_kernel(zeros: int = 56) -> torch.Tensor:
    """Hann-windowed sinc taps that interpolate the samples halfway between the given ones."""
    window = torch.hann_window(4 * zeros + 1, periodic=False)[1::2]
    t = torch.linspace(-zeros + 0.5, zeros - 0.5, 2 * zeros) * math.pi
    return (torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t) * window).view(1, 1, -1)


def upsample2(x: torch.Tensor, zeros: int = 56) -> torch.Tensor:
    *other, time = x.shape
    between = F.conv1d(x.reshape(-1, 1, time), sinc_kernel(zeros).to(x), padding=zeros)[..., 1:].view(*other, time)
    return torch.stack([x, between], dim=-1).view(*other, -1)


def downsample2(x: torch.Tensor, zeros: int = 56) -> torch.Tensor:
    if x.shape[-1] % 2:
        x = F.pad(x, (0, 1))
    even, odd = x[..., ::2], x[..., 1::2]
    *other, time = odd.shape
    between = F.conv1d(odd.reshape(-1, 1, time), sinc_kernel(zeros).to(x), padding=zeros)[..., :-1].view(*other, time)
    return (even + between).view(*other, -1).mul(0.5)


class BLSTM(nn.Module):
    def __init__(self, dim: int, layers: int = 2, bi: bool = False):
        super().__init__()
        self.lstm = nn.LSTM(bidirectional=bi, num_layers=layers, hidden_size=dim, input_size=dim)
        self.linear = nn.Linear(2 * dim, dim) if bi else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (time, batch, dim)
        x, _ = self.lstm(x)
        return self.linear(x) if self.linear is not None else x


class Demucs(nn.Module):
    """The ``denoiser`` package's Demucs with its defaults (DNS64: ``hidden=64``)."""

    def __init__(self, chin: int = 1, chout: int = 1, hidden: int = 48, depth: int = 5, kernel_size: int = 8,
                 stride: int = 4, causal: bool = True, resample: int = 4, growth: float = 2, max_hidden: int = 10_000,
                 normalize: bool = True, glu: bool = True, rescale: float = 0.1, floor: float = 1e-3,
                 sample_rate: int = DEMUCS_RATE):
        super().__init__()
        if resample not in (1, 2, 4):
            raise ValueError("Demucs: resample must be 1, 2 or 4")
        self.depth, self.kernel_size, self.stride, self.resample = depth, kernel_size, stride, resample
        self.normalize, self.floor, self.sample_rate = normalize, floor, sample_rate
        self.encoder, self.decoder = nn.ModuleList(), nn.ModuleList()
        scale = 2 if glu else 1
        gate = nn.GLU(1) if glu else nn.ReLU()
        for index in range(depth):
            self.encoder.append(nn.Sequential(nn.Conv1d(chin, hidden, kernel_size, stride), nn.ReLU(),
                                              nn.Conv1d(hidden, hidden * scale, 1), gate))
            decode = [nn.Conv1d(hidden, scale * hidden, 1), gate,
                      nn.ConvTranspose1d(hidden, chout, kernel_size, stride)]
            if index > 0:
                decode.append(nn.ReLU())
            self.decoder.insert(0, nn.Sequential(*decode))
            chout, chin, hidden = hidden, hidden, min(int(growth * hidden), max_hidden)
        self.lstm = BLSTM(chin, bi=not causal)
        if rescale:
            for module in self.modules():  # the package's initial weight rescaling (checkpoints overwrite it)
                if isinstance(module, nn.Conv1d | nn.ConvTranspose1d):
                    factor = (module.weight.std().detach() / rescale) ** 0.5
                    module.weight.data /= factor
                    if module.bias is not None:
                        module.bias.data /= factor

    def valid_length(self, length: int) -> int:
        """The input length the strided layers consume whole (the input is zero-padded to it)."""
        length = math.ceil(length * self.resample)
        for _ in range(self.depth):
            length = max(math.ceil((length - self.kernel_size) / self.stride) + 1, 1)
        for _ in range(self.depth):
            length = (length - 1) * self.stride + self.kernel_size
        return int(math.ceil(length / self.resample))

    def forward(self, mix: torch.Tensor) -> torch.Tensor:  # (batch, time) or (batch, channels, time)
        if mix.dim() == 2:
            mix = mix.unsqueeze(1)
        std = mix.mean(dim=1, keepdim=True).std(dim=-1, keepdim=True) if self.normalize else 1.0
        x = mix / (self.floor + std)
        length = x.shape[-1]
        x = F.pad(x, (0, self.valid_length(length) - length))
        for _ in range(int(math.log2(self.resample))):
            x = upsample2(x)
        skips = []
        for encode in self.encoder:
            x = encode(x)
            skips.append(x)
        x = self.lstm(x.permute(2, 0, 1)).permute(1, 2, 0)
        for decode in self.decoder:
            x = decode(x + skips.pop(-1)[..., :x.shape[-1]])
        for _ in range(int(math.log2(self.resample))):
            x = downsample2(x)
        return std * x[..., :length]


def read_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """``(state dict, constructor kwargs)`` of a Demucs checkpoint file, without running any code."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"preprocess.demucs_checkpoint: {path} is not a file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state, kwargs = load_file(str(path)), {}
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        kwargs = dict(state.get("kwargs") or {}) if isinstance(state, dict) and "state" in state else {}
        state = state["state"] if isinstance(state, dict) and "state" in state else state
    if not isinstance(state, dict) or "encoder.0.0.weight" not in state:
        raise ValueError(f"preprocess.demucs_checkpoint: {path} holds no Demucs weights (no encoder.0.0.weight)")
    kwargs.setdefault("hidden", int(state["encoder.0.0.weight"].shape[0]))
    kwargs.setdefault("depth", len({m[1] for k in state if (m := re.match(r"encoder\.(\d+)\.", k))}))
    kwargs.setdefault("causal", "lstm.linear.weight" not in state)
    return state, kwargs


class DemucsDenoiser:
    """``denoise(wave) -> wave`` at ``sample_rate`` with a Demucs checkpoint; thread-safe (inference only)."""

    def __init__(self, checkpoint: str | Path, sample_rate: int):
        state, kwargs = read_checkpoint(checkpoint)
        self.model = Demucs(**kwargs).eval()
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"preprocess.demucs_checkpoint: {checkpoint} does not fit a Demucs of its shape "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        self.sample_rate = sample_rate

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        import soxr

        rate = self.model.sample_rate
        x = wave if self.sample_rate == rate else soxr.resample(wave, self.sample_rate, rate, quality="HQ")
        with torch.inference_mode():
            clean = self.model(torch.from_numpy(np.ascontiguousarray(x, np.float32))[None])[0, 0].numpy()
        if self.sample_rate != rate:
            clean = soxr.resample(clean, rate, self.sample_rate, quality="HQ")
        return np.ascontiguousarray(clean[:len(wave)], dtype=np.float32)
