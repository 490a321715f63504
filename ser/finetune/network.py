"""The network fine-tuning trains: the encoder (as extraction loads it) and three heads.

- SER: the ``attentive`` classifier's network (learned softmax weights over every hidden state, a
  projection, attentive statistics pooling over the real frames, an MLP), on each state layer-normed;
- CTC: a linear layer over the last state to characters (:mod:`ser.finetune.text`);
- prosody: a linear layer over the last state regressing frame pitch and energy (:mod:`ser.finetune.prosody`).
A head whose loss weight is 0 is not built.
"""

from __future__ import annotations

import torch
from torch import nn

from ser.errors import ConfigError
from ser.features.encoder import NeuralEncoder

BACKBONES = ("ssl", "whisper")  # the extractors whose encoder fine-tuning can train


def load_backbone(extractor: str, model: str, device: str = "auto", default_preprocessor: bool = False,
                  trainable: bool = True) -> NeuralEncoder:
    """The encoder of ``features.extractor`` / ``features.model`` through the extractor's own loading code,
    every hidden state exposed (``trainable``: fp32 weights for training)."""
    if extractor == "ssl":
        from ser.features.ssl import SslEncoder as Encoder
    elif extractor == "whisper":
        from ser.features.whisper import WhisperEncoder as Encoder
    else:
        raise ConfigError(f"features.extractor: {extractor!r} has no encoder to fine-tune; classifier finetune "
                          f"takes {' or '.join(BACKBONES)}")
    return Encoder(model, "all", "none", device, default_preprocessor, trainable=trainable)


def shape(encoder: NeuralEncoder) -> tuple[int, int]:
    """(hidden states, width) of an encoder: layers + 1 (the input to the first layer), and the model dim."""
    c = encoder.config
    return (c.encoder_layers + 1, c.d_model) if c.model_type == "whisper" else (c.num_hidden_layers + 1, c.hidden_size)


class FineTuneNet(nn.Module):
    """``forward(waves)`` -> {"logits", "lengths", and "ctc" (log-probabilities) / "prosody" when built}."""

    def __init__(self, encoder: NeuralEncoder, n_classes: int, vocab_size: int, p):
        from ser.models.classifiers import attentive

        super().__init__()
        self.encoder = encoder  # a plain attribute: the module below is what trains
        self.backbone = encoder.module
        layers, dim = shape(encoder)
        head = attentive.Params(projection=p.projection, attention_hidden=p.attention_hidden, hidden=p.hidden,
                                dropout=p.dropout)
        self.ser = attentive.network(head, layers, dim, n_classes)
        self.ctc = nn.Linear(dim, vocab_size) if vocab_size and p.alpha_asr > 0 else None
        self.prosody = nn.Linear(dim, 2) if p.alpha_prosody > 0 else None

    def heads(self) -> nn.ModuleDict:
        return nn.ModuleDict({k: m for k, m in (("ser", self.ser), ("ctc", self.ctc), ("prosody", self.prosody))
                              if m is not None})

    def forward(self, waves) -> dict[str, torch.Tensor]:
        states, mask = self.encoder.states(waves)
        x = torch.stack([nn.functional.layer_norm(h.float(), h.shape[-1:]) for h in states], 2)  # (B, T, L, D)
        lengths = mask.sum(1)
        out = {"logits": self.ser(x, lengths), "lengths": lengths}
        if self.ctc is not None:
            out["ctc"] = self.ctc(states[-1].float()).log_softmax(-1)
        if self.prosody is not None:
            out["prosody"] = self.prosody(states[-1].float())
        return out


def prepare_for_training(net: FineTuneNet, s) -> list:
    """Freeze what stays fixed, switch on gradient checkpointing; the encoder's trainable parameters."""
    encoder, backbone = net.encoder, net.backbone
    if getattr(backbone.config, "layerdrop", 0):  # a skipped layer would drop a state the SER head weighs
        backbone.config.layerdrop = 0.0
    if s.freeze_feature_encoder:
        if hasattr(backbone, "freeze_feature_encoder"):
            backbone.freeze_feature_encoder()  # wav2vec2-style convolutional front end
        else:  # Whisper: the two convolutions over the log-mel
            for conv in (backbone.conv1, backbone.conv2):
                conv.requires_grad_(False)
    if s.gradient_checkpointing:
        if hasattr(encoder, "checkpointing"):
            encoder.checkpointing = True
        else:
            backbone.gradient_checkpointing_enable()
    return [p for p in backbone.parameters() if p.requires_grad]
