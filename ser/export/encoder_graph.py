"""The encoder of a trained model as an ONNX graph: padded input and real lengths in, pooled vectors out.

The graph computes what the extractor computes for a batch (:mod:`ser.features.ssl`,
:mod:`ser.features.whisper`): the same hidden states, masked the same way, pooled over real frames
only (:func:`ser.features.encoder.pooled`), so a clip's vector does not depend on its batch.

- ``ssl``: inputs ``wave`` (batch, samples) float32, zero-padded, and ``samples`` (batch,) int64; the
  per-clip normalisation of the checkpoint's preprocessor (zero mean, unit variance over the real
  samples) happens inside the graph. A group-norm front end (no attention mask) takes equal-length
  batches only, as the extractor does; the bundle's manifest says so (``equal_lengths``).
- ``whisper``: inputs ``mel`` (batch, mels, 2T) float32, the log-mel of each chunk of at most 30 s
  (the bundle's runtime computes it with numpy), zero-padded, and ``frames`` (batch,) int64, the
  encoder frames of each chunk (mel frames / 2).

Exported with torch's TorchScript-based exporter (``dynamo=False``, opset 17) with dynamic batch and
length axes. :func:`quantize` makes the int8 version: onnxruntime's dynamic quantisation of the
matrix products (MatMul, Gemm) only, so the convolutional front end stays fp32.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ser.features import encoder

OPSET = 17


class SslGraph(nn.Module):
    """(wave, samples) -> pooled vectors of an :class:`ser.features.ssl.SslEncoder`."""

    def __init__(self, extractor: Any):
        super().__init__()
        self.model, self.x = extractor.model, extractor
        self.normalize = bool(getattr(extractor.preprocessor, "do_normalize", False))

    def forward(self, wave: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        x = self.x
        real = encoder.frame_mask(samples, wave.shape[1])
        if self.normalize:  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm, on the real samples of each clip
            weight, n = real.float(), samples[:, None].float()
            mean = (wave * weight).sum(1, keepdim=True) / n
            var = ((wave - mean) ** 2 * weight).sum(1, keepdim=True) / n
            wave = (wave - mean) / torch.sqrt(var + 1e-7) * weight
        kwargs = {"attention_mask": real.long()} if x.takes_mask else {}
        out = self.model(wave, output_hidden_states=x.all_states, **kwargs)
        states = [*out.hidden_states[:-1], out.last_hidden_state] if x.all_states else \
            {x.indices[0]: out.last_hidden_state}
        frames = self.model._get_feat_extract_output_lengths(samples)
        mask = encoder.frame_mask(frames, out.last_hidden_state.shape[1])
        return encoder.pooled(states, mask, x.indices, x.average, x.pooling)


class WhisperGraph(nn.Module):
    """(mel, frames) -> pooled vectors of one chunk each, for a :class:`ser.features.whisper.WhisperEncoder`."""

    def __init__(self, extractor: Any):
        super().__init__()
        self.encoder, self.x = extractor.encoder, extractor

    def forward(self, mel: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        x = self.x
        states, mask = x.hidden_states(mel, frames)
        return encoder.pooled(states, mask, x.indices, x.average, x.pooling)


def export(extractor: Any, path: Path) -> dict:
    """Write ``extractor``'s encoder to ``path`` (fp32) and return the runtime's description of its input."""
    if extractor.pooling not in ("mean", "mean_std"):
        raise ValueError(f"features.pooling: {extractor.pooling!r}: only pooled vectors (mean, mean_std) export")
    if extractor.dtype != torch.float32:
        raise ValueError("export runs on the CPU in fp32: pass device='cpu' when loading the model")
    sr = int(extractor.sample_rate)
    if extractor.kind == "ssl":
        graph, names = SslGraph(extractor), ("wave", "samples")
        example = (torch.randn(2, sr), torch.tensor([sr, sr * 3 // 4]))
        if not extractor.pads:
            example = (torch.randn(1, sr), torch.tensor([sr]))
        info = {"input": "wave", "normalize": graph.normalize, "equal_lengths": not extractor.pads}
    elif extractor.kind == "whisper":
        mels = int(extractor.config.num_mel_bins)
        graph, names = WhisperGraph(extractor), ("mel", "frames")
        example = (torch.randn(2, mels, 200), torch.tensor([100, 60]))
        info = {"input": "log-mel", "equal_lengths": False, "max_mel_frames": int(extractor.max_frames),
                **mel_settings(extractor.preprocessor)}
    else:
        raise ValueError(f"features.extractor {extractor.kind!r} has no encoder graph")
    to_onnx(graph, example, str(path), names, "pooled", {names[0]: {0: "batch", example[0].dim() - 1: "length"},
                                                        names[1]: {0: "batch"}, "pooled": {0: "batch"}})
    return {"kind": extractor.kind, "sample_rate": sr, "pooling": extractor.pooling, "average": extractor.average,
            "layers": list(extractor.indices), **info}


def to_onnx(module: nn.Module, example: tuple, dest: Any, inputs: tuple[str, ...], output: str,
            dynamic_axes: dict) -> None:
    """torch.onnx.export of ``module`` in eval mode, traced on ``example`` (the TorchScript-based exporter: the
    transformers encoders' Python control flow traces as the path ``example`` takes, with dynamic axes)."""
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*(legacy TorchScript|mismatched key_padding_mask|dynamo=False|"
                                "feature will be removed).*")
        torch.onnx.export(module.eval(), example, dest, input_names=list(inputs), output_names=[output],
                          dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False)


def mel_settings(preprocessor: Any) -> dict:
    """What the runtime's numpy log-mel needs of a WhisperFeatureExtractor (its filters go in a .npy file)."""
    return {"n_fft": int(preprocessor.n_fft), "hop_length": int(preprocessor.hop_length)}


def quantize(fp32: Path, int8: Path) -> None:
    """Dynamic int8 quantisation of ``fp32``'s MatMul and Gemm weights (activations quantised on the fly);
    convolutions, normalisations and attention softmax stay fp32."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    # onnxruntime's quantiser logs every tensor it skips on the root logger (kept out of the export's log), and
    # suggests its pre-processing (quant_pre_process): on Whisper-base its symbolic shape inference fails, and
    # without it the int8 graph gave the same vectors and speed, so it is not run
    def advice(record: logging.LogRecord) -> bool:
        return record.name != "root" or (record.levelno >= logging.WARNING
                                         and "pre-processing before quantization" not in record.getMessage())

    logging.getLogger().addFilter(advice)
    try:
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                         per_channel=True)
    finally:
        logging.getLogger().removeFilter(advice)
