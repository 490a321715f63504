"""The encoder of a Whisper checkpoint (``openai/whisper-*`` or a local folder), run on real frames only.

Whisper's feature extractor pads every clip to 30 s and transformers' encoder insists on that
length; for 1-5 s emotion clips that is 6-20 times the work, and the pooled vector would depend on
the padding. Here each clip's log-mel is computed on its own length (the same values the 30 s
version has on those frames), cut to an even number of frames, and the encoder is run directly:
its two convolutions, the first T rows of the sinusoidal position table, then the layers. A batch
pads mels with zeros (exactly the convolutions' own zero padding, so the real frames see the same
input as alone) and masks the padded frames out of attention and pooling, so a clip's vector does
not depend on what it is batched with.

The encoder has 1500 positions (30 s). A longer clip is cut into equal chunks of at most 30 s,
each encoded as Whisper encodes its 30 s windows (own log-mel, positions from 0), and the real
frames of its chunks are joined before pooling: the vector pools the whole clip, at 50 frames/s.

Only the layers up to the deepest one asked for are run (layer 3 of whisper-base costs half the
encoder). Hidden-state indices follow transformers: 0 = input to the first layer, i = output of
layer i, the last one after the final layer norm.
"""

from __future__ import annotations

import contextlib
import logging
import math

import numpy as np
import torch
from torch import nn

from ser.errors import FeatureError
from ser.features import checkpoints, encoder

log = logging.getLogger(__name__)


class WhisperEncoder(encoder.NeuralEncoder):
    """Pooled hidden states of a Whisper encoder over the real frames of each clip."""

    kind = "whisper"

    def __init__(self, model: str, layers: str | int | list[int] = "last", pooling: str = "mean",
                 device: str = "auto", default_preprocessor: bool = False, trainable: bool = False):
        from transformers import WhisperFeatureExtractor, WhisperModel

        super().__init__(model, layers, pooling, device, default_preprocessor, trainable)
        self.checkpointing = False  # fine-tuning: recompute each layer in the backward pass to save memory
        config = self.config
        if config.model_type != "whisper":
            raise FeatureError(f"features.model: {model!r} is a {config.model_type!r} checkpoint, not Whisper; "
                               "set features.model to an openai/whisper-* id or a Whisper folder "
                               "(or features.extractor: ssl)")
        self.preprocessor = checkpoints.load_preprocessor(
            model, lambda: WhisperFeatureExtractor(feature_size=config.num_mel_bins),
            "Whisper's standard log-mel settings", self.default_preprocessor)
        self.sample_rate = int(self.preprocessor.sampling_rate)
        self.max_frames = 2 * config.max_source_positions  # mel frames: 3000 = 30 s
        n_layers = config.encoder_layers
        self.n_states = n_layers + 1
        self.indices, self.average = encoder.select_layers(layers, self.n_states)
        self.depth = n_layers if self.average else max(self.indices)
        with _quiet_if_encoder_only(model):
            whole = checkpoints.load_pretrained(WhisperModel.from_pretrained, model, weights=True, dtype=self.dtype)
        self.encoder = whole.get_encoder().to(self.device).eval()
        del whole  # the decoder is never used
        log.info("%s encoder (%d layers, running %d) on %s, %s", model, n_layers, self.depth, self.device,
                 str(self.dtype).removeprefix("torch."))

    def identity(self) -> dict:
        return {**super().identity(), "chunk_seconds": self.max_frames / 100}

    def chunks(self, wave: np.ndarray) -> list[np.ndarray]:
        """``wave`` cut into the fewest equal pieces of at most 30 s (one piece when it fits)."""
        limit = self.max_frames * self.preprocessor.hop_length
        edges = np.linspace(0, len(wave), max(1, math.ceil(len(wave) / limit)) + 1).round().astype(int)
        return [wave[a:b] for a, b in zip(edges[:-1], edges[1:])]

    def log_mel(self, wave: np.ndarray) -> np.ndarray:
        """(mels, frames) log-mel of the real length of a chunk (at most 30 s), frames even."""
        if len(wave) > self.max_frames * self.preprocessor.hop_length:
            raise ValueError(f"{len(wave)} samples: longer than Whisper's window; encode it in chunks()")
        mel = self.preprocessor(wave, sampling_rate=self.sample_rate, padding="longest",
                                return_tensors="np")["input_features"][0]
        frames = min(mel.shape[1], self.max_frames) // 2 * 2
        if frames < 2:
            raise ValueError(f"clip too short for Whisper: {len(wave)} samples")
        return mel[:, :frames]

    @torch.inference_mode()
    def _embed(self, waves: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        joined, mask = self._states(waves, self.indices)
        return encoder.pool(joined, mask, self.indices, self.average, self.pooling)

    @property
    def module(self) -> nn.Module:
        return self.encoder

    def states(self, waves: list[np.ndarray]) -> tuple[list[torch.Tensor], torch.Tensor]:
        if self.depth != len(self.encoder.layers):
            raise ValueError("states() needs every layer: build the encoder with layers='all'")
        joined, mask = self._states(waves, range(self.depth + 1))
        return [joined[i] for i in range(self.depth + 1)], mask

    def _states(self, waves: list[np.ndarray], indices) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """States ``indices`` of whole clips (their 30 s chunks joined) and the mask of real frames."""
        pieces = [self.chunks(w) for w in waves]
        mels = [self.log_mel(c) for p in pieces for c in p]
        frames = torch.tensor([m.shape[1] for m in mels])
        batch = torch.zeros(len(mels), mels[0].shape[0], int(frames.max()))
        for row, m in zip(batch, mels):
            row[:, : m.shape[1]] = torch.from_numpy(m)
        states, mask = self.hidden_states(batch.to(self.device, self.dtype), (frames // 2).to(self.device))
        return encoder.join_rows(states, mask, [len(p) for p in pieces], set(indices))

    def hidden_states(self, mel: torch.Tensor, frames: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Encoder hidden states (input, layer 1, ... up to ``depth``) and the (batch, T) mask of real frames."""
        enc = self.encoder
        h = nn.functional.gelu(enc.conv2(nn.functional.gelu(enc.conv1(mel)))).permute(0, 2, 1)
        h = h + enc.embed_positions.weight[: h.shape[1]]
        mask = encoder.frame_mask(frames, h.shape[1])
        bias = None
        if torch.onnx.is_in_onnx_export() or not bool(mask.all()):  # additive key mask over heads and queries
            bias = (~mask)[:, None, None, :].to(h.dtype) * torch.finfo(h.dtype).min
        states = [h]
        for layer in enc.layers[: self.depth]:
            if self.checkpointing and torch.is_grad_enabled():
                from torch.utils.checkpoint import checkpoint

                out = checkpoint(layer, h, bias, use_reentrant=False)
            else:
                out = layer(h, bias)
            h = out[0] if isinstance(out, tuple) else out
            states.append(h)
        if self.depth == len(enc.layers):
            states[-1] = enc.layer_norm(h)
        return states, mask


@contextlib.contextmanager
def _quiet_if_encoder_only(model: str):
    """A fine-tuned backbone (:mod:`ser.finetune.files`) holds the encoder's weights only: transformers
    would list every decoder weight as missing. The decoder is never used; say so once instead."""
    from pathlib import Path

    from transformers.utils import logging as hf_logging

    weights = Path(model).expanduser() / "model.safetensors"
    only = False
    if weights.is_file():
        from safetensors import safe_open

        with safe_open(str(weights), "pt") as f:
            only = all(k.startswith("encoder.") for k in f.keys())  # noqa: SIM118 - safe_open is not a dict
    if not only:
        yield
        return
    log.info("%s holds a Whisper encoder only (fine-tuned): the unused decoder is left uninitialised", model)
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def build(params, trainable: bool = False) -> WhisperEncoder:
    """The extractor of ``features``; ``trainable``: every layer's states, fp32 weights, for fine-tuning."""
    f = params.features
    if trainable:
        return WhisperEncoder(f.model, "all", "none", f.device, f.default_preprocessor, trainable=True)
    return WhisperEncoder(f.model, f.layers, f.pooling, f.device, f.default_preprocessor)
