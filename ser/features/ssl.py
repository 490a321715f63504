"""Self-supervised speech encoders (WavLM, HuBERT, wav2vec2, data2vec-audio) through transformers' AutoModel.

``features.model`` is a hub id (``microsoft/wavlm-large``) or a local folder written by
``save_pretrained``; both go through the same loading code. The checkpoint's own preprocessor
config decides the input normalisation (WavLM-Large: zero mean, unit variance per clip;
wav2vec2-base: raw samples) and whether the model takes an attention mask.

Batching never changes a clip's vector: each clip is normalised on its own, padded frames are
masked in attention and left out of pooling. Checkpoints whose convolutional front end uses group
norm (wav2vec2-base, HuBERT-base; they also have no attention-mask support) would mix padding into
every frame's statistics, so for those a batch is split into runs of equal-length clips instead.
"""

from __future__ import annotations

import logging
import warnings
from collections import defaultdict

import numpy as np
import torch

from ser.errors import FeatureError
from ser.features import checkpoints, encoder

log = logging.getLogger(__name__)
FAMILIES = ("wavlm", "hubert", "wav2vec2", "wav2vec2-conformer", "data2vec-audio", "unispeech", "unispeech-sat")


class SslEncoder(encoder.NeuralEncoder):
    """Pooled hidden states of a wav2vec2-style encoder."""

    kind = "ssl"

    def __init__(self, model: str, layers: str | int | list[int] = "last", pooling: str = "mean",
                 device: str = "auto", default_preprocessor: bool = False, trainable: bool = False):
        from transformers import AutoModel, Wav2Vec2FeatureExtractor

        super().__init__(model, layers, pooling, device, default_preprocessor, trainable)
        config = self.config
        if config.model_type not in FAMILIES:
            hint = " (set features.extractor: whisper)" if config.model_type == "whisper" else ""
            raise FeatureError(f"features.model: {model!r} is a {config.model_type!r} checkpoint; features.extractor "
                               f"ssl takes {', '.join(FAMILIES)}{hint}")
        layer_norm_front = getattr(config, "feat_extract_norm", "layer") == "layer"
        usual = "per-clip zero mean, unit variance" if layer_norm_front else "raw samples"
        self.preprocessor = checkpoints.load_preprocessor(
            model, lambda: Wav2Vec2FeatureExtractor(do_normalize=layer_norm_front,
                                                    return_attention_mask=layer_norm_front),
            f"the input normalisation its front end suggests ({usual})", self.default_preprocessor)
        self.sample_rate = int(self.preprocessor.sampling_rate)
        self.takes_mask = bool(getattr(self.preprocessor, "return_attention_mask", False))
        self.pads = self.takes_mask and layer_norm_front
        self.n_states = config.num_hidden_layers + 1
        self.indices, self.average = encoder.select_layers(layers, self.n_states)
        self.all_states = self.average or self.indices != [config.num_hidden_layers]
        self.model = checkpoints.load_pretrained(AutoModel.from_pretrained, model, weights=True, dtype=self.dtype)
        self.model.to(self.device).eval()
        log.info("%s (%s, %d layers) on %s, %s; %s", model, config.model_type, config.num_hidden_layers,
                 self.device, str(self.dtype).removeprefix("torch."),
                 "padded batches with attention mask" if self.pads else "batches of equal-length clips only")

    def _embed(self, waves: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        if self.pads:
            return self._forward(waves)
        by_length = defaultdict(list)
        for i, wave in enumerate(waves):
            by_length[len(wave)].append(i)
        out = {}
        for rows in by_length.values():
            out.update(zip(rows, self._forward([waves[i] for i in rows])))
        clips = [out[i] for i in range(len(waves))]
        return clips if self.pooling == "none" else np.stack(clips)

    @property
    def module(self) -> torch.nn.Module:
        return self.model

    def states(self, waves: list[np.ndarray]) -> tuple[list[torch.Tensor], torch.Tensor]:
        if self.pads or len(waves) == 1:
            return self._states(waves, True)
        parts = [self._states([w], True) for w in waves]  # a group-norm front end: each clip alone
        lengths = torch.tensor([int(mask.sum()) for _, mask in parts], device=self.device)
        states = [torch.nn.utils.rnn.pad_sequence([clip[i][0] for clip, _ in parts], batch_first=True)
                  for i in range(len(parts[0][0]))]
        return states, encoder.frame_mask(lengths, int(lengths.max()))

    def _states(self, waves: list[np.ndarray], all_states: bool) -> tuple[list | dict, torch.Tensor]:
        """Hidden states of one padded batch (all of them, or {index: state} of the one asked for) and the mask."""
        values = [self.preprocessor(w, sampling_rate=self.sample_rate, return_tensors="np")["input_values"][0]
                  for w in waves]
        lengths = torch.tensor([len(v) for v in values])
        batch = torch.zeros(len(values), int(lengths.max()))
        for row, v in zip(batch, values):
            row[: len(v)] = torch.from_numpy(v)
        kwargs = {}
        if self.takes_mask:
            kwargs["attention_mask"] = encoder.frame_mask(lengths, batch.shape[1]).long().to(self.device)
        with warnings.catch_warnings():  # WavLM hands torch a float bias with a bool padding mask: harmless
            warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask and attn_mask")
            out = self.model(batch.to(self.device, self.dtype), output_hidden_states=all_states, **kwargs)
        # index L is the model's final output: transformers 5 gives the last layer before the final layer norm
        # of WavLM-Large-style encoders as hidden_states[-1], and after it as last_hidden_state
        states = [*out.hidden_states[:-1], out.last_hidden_state] if all_states else \
            {self.indices[0]: out.last_hidden_state}
        frames = self.model._get_feat_extract_output_lengths(lengths).to(self.device)
        return states, encoder.frame_mask(frames, out.last_hidden_state.shape[1])

    @torch.inference_mode()
    def _forward(self, waves: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        states, mask = self._states(waves, self.all_states)
        return encoder.pool(states, mask, self.indices, self.average, self.pooling)


def build(params, trainable: bool = False) -> SslEncoder:
    """The extractor of ``features``; ``trainable``: every layer's states, fp32 weights, for fine-tuning."""
    f = params.features
    if trainable:
        return SslEncoder(f.model, "all", "none", f.device, f.default_preprocessor, trainable=True)
    return SslEncoder(f.model, f.layers, f.pooling, f.device, f.default_preprocessor)
