"""Tiny randomly initialised speech encoders saved with save_pretrained, so tests load them through
the same code path as ``microsoft/wavlm-large`` or ``openai/whisper-base`` (no hub, seconds to build)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub

import torch  # noqa: E402
from transformers import (  # noqa: E402
    HubertConfig,
    HubertModel,
    Wav2Vec2FeatureExtractor,
    WavLMConfig,
    WavLMModel,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperModel,
)

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)


def tiny_wavlm(dest: Path, seed: int = 0) -> Path:
    """WavLM-Large's layout in miniature: layer-norm front end, attention mask, normalised input."""
    torch.manual_seed(seed)
    WavLMModel(WavLMConfig(feat_extract_norm="layer", do_stable_layer_norm=True, **SMALL)).save_pretrained(dest)
    Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(dest)
    return dest


def tiny_hubert(dest: Path, seed: int = 0) -> Path:
    """HuBERT-base's layout in miniature: group-norm front end, no attention mask, raw input."""
    torch.manual_seed(seed)
    HubertModel(HubertConfig(feat_extract_norm="group", **SMALL)).save_pretrained(dest)
    Wav2Vec2FeatureExtractor(do_normalize=False, return_attention_mask=False).save_pretrained(dest)
    return dest


def tiny_whisper(dest: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    config = WhisperConfig(d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
                           decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64, num_mel_bins=80)
    WhisperModel(config).save_pretrained(dest)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(dest)
    return dest
