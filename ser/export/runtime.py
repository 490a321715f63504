"""Run an exported bundle with onnxruntime and numpy alone: no torch, no transformers, no ser.

This file is copied into every bundle as ``runtime.py``; next to the bundle's files it is all a user
needs (``pip install onnxruntime numpy``)::

    from runtime import Bundle
    bundle = Bundle("models.onnx")                    # or Bundle(folder, precision="int8")
    rows = bundle.predict([wave, ...])                # mono float32 waves at bundle.sample_rate

The glue between the graphs (:meth:`Bundle.embed`, :meth:`Bundle.classify`): the Whisper log-mel in
numpy (the computation of transformers' WhisperFeatureExtractor), batches padded with zeros and their
real lengths, clips over 30 s encoded in chunks whose pooled statistics are merged, each head graph
run on its layers' block, their probabilities averaged, temperature scaling, and the novelty score
from the statistics in ``novelty.npz``. Temperature scaling and the novelty scores are the computations of
``ser.models.calibration`` and ``ser.trust.novelty``, written again here because this file imports nothing
from ser; ``tests/test_export.py`` checks that both give the same numbers. Each wave is classified whole:
cutting long recordings into windows, the speech gate (trust.speech, Silero VAD) and preprocess chains stay
in ``python -m stages.predict`` / ``stages.serve``, which run bundles too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort


class Bundle:
    """An exported model: ``embed`` (waves -> vectors), ``classify`` (vectors -> probabilities, novelty)."""

    def __init__(self, folder: str | Path, precision: str = "fp32", threads: int | None = None):
        self.folder = Path(folder)
        self.manifest = json.loads((self.folder / "bundle.json").read_text())
        m = self.manifest
        self.labels, self.sample_rate = list(m["labels"]), int(m["encoder"]["sample_rate"])
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        files, self.encoder = m["encoder"]["files"], None
        if files and precision not in files:
            raise ValueError(f"{folder}: no {precision} encoder in this bundle (it has {', '.join(files)}); "
                             "export it with --int8")
        if files:
            self.encoder = self._session(files[precision], options)
        self.heads = [(self._session(h["file"], options), h) for h in m["head"]["members"]]
        statistics = self.folder / "novelty.npz"  # absent from an encoder-only bundle
        self.novelty = dict(np.load(statistics, allow_pickle=False)) if statistics.is_file() else {}
        if m["encoder"]["kind"] == "whisper":
            self.mel_filters = np.load(self.folder / "mel_filters.npy", allow_pickle=False)

    def _session(self, name: str, options: ort.SessionOptions) -> ort.InferenceSession:
        return ort.InferenceSession(str(self.folder / name), options, providers=["CPUExecutionProvider"])

    # -- waves -> vectors -----------------------------------------------------------------------

    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        """One pooled vector per wave, (len(waves), dim) float32; a batch's padding never changes a vector."""
        e = self.manifest["encoder"]
        if self.encoder is None:
            raise ValueError(f"{self.folder} has no encoder graph: its {e['kind']} features are computed in Python "
                             "(python -m stages.predict --models BUNDLE); classify() takes such vectors")
        waves = [np.asarray(w, np.float32) for w in waves]
        if e["kind"] == "whisper":
            return self._whisper(waves)
        if e["equal_lengths"]:  # a group-norm front end: clips of one length per batch
            by_length: dict[int, list[int]] = {}
            for i, w in enumerate(waves):
                by_length.setdefault(len(w), []).append(i)
            groups = list(by_length.values())
        else:
            groups = [list(range(len(waves)))]
        out = [None] * len(waves)
        for rows in groups:
            batch, lengths = _padded([waves[i] for i in rows])
            for i, v in zip(rows, self.encoder.run(None, {"wave": batch, "samples": lengths})[0]):
                out[i] = v
        return np.stack(out)

    def _whisper(self, waves: list[np.ndarray]) -> np.ndarray:
        e = self.manifest["encoder"]
        limit = e["max_mel_frames"] * e["hop_length"]
        pieces = [chunks(w, limit) for w in waves]
        mels = [self.log_mel(c) for p in pieces for c in p]
        batch, frames = _padded(mels)
        pooled = self.encoder.run(None, {"mel": batch, "frames": frames // 2})[0]
        out, start = [], 0
        for p in pieces:
            rows = slice(start, start + len(p))
            out.append(_merge(pooled[rows], frames[rows] // 2, e["pooling"], 1 if e["average"] else len(e["layers"])))
            start += len(p)
        return np.stack(out)

    def log_mel(self, wave: np.ndarray) -> np.ndarray:
        """Whisper's log-mel of a chunk of at most 30 s, (mels, frames), frames cut to an even number."""
        n_fft, hop = self.manifest["encoder"]["n_fft"], self.manifest["encoder"]["hop_length"]
        padded = np.pad(wave.astype(np.float64), n_fft // 2, mode="reflect")
        count = 1 + (len(padded) - n_fft) // hop
        frames = np.lib.stride_tricks.as_strided(padded, (count, n_fft), (padded.strides[0] * hop, padded.strides[0]))
        window = np.hanning(n_fft + 1)[:-1]  # periodic Hann, as torch.hann_window
        power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
        mel = np.log10(np.maximum(self.mel_filters.T @ power[:-1].T, 1e-10))
        mel = (np.maximum(mel, mel.max() - 8.0) + 4.0) / 4.0
        even = min(mel.shape[1], self.manifest["encoder"]["max_mel_frames"]) // 2 * 2
        if even < 2:
            raise ValueError(f"clip too short for Whisper: {len(wave)} samples")
        return mel[:, :even].astype(np.float32)

    # -- vectors -> probabilities ---------------------------------------------------------------

    def head_proba(self, X: np.ndarray) -> np.ndarray:
        """The head graphs' probabilities (len(X), labels), averaged over the layers' heads, before temperature."""
        X = np.asarray(X, np.float32)
        proba = np.zeros((len(X), len(self.labels)))
        for session, head in self.heads:
            block = np.ascontiguousarray(X[:, head["start"]:head["stop"]])
            out = session.run([head["output"]], {session.get_inputs()[0].name: block})[0]
            proba[:, head["columns"]] += out / len(self.heads)
        return proba

    def classify(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities (len(X), labels) and the novelty score of each row."""
        proba = self.head_proba(X)
        temperature = self.manifest["temperature"]
        if temperature != 1.0:
            logits = np.log(np.clip(proba, 1e-12, 1.0)) / temperature
            proba = np.exp(logits - logits.max(1, keepdims=True))
        proba /= proba.sum(1, keepdims=True)
        return proba, self._novelty(X, proba)

    def _novelty(self, X: np.ndarray, proba: np.ndarray) -> np.ndarray:
        a, method = self.novelty, self.manifest["novelty"]["method"]
        if method == "msp":
            return 1.0 - proba.max(1)
        Z = (X.astype(np.float64) - a["mean"]) / a["scale"]
        if method == "knn":  # distance to the k-th nearest training clip
            k = min(self.manifest["novelty"]["k"], len(a["bank"])) - 1
            return np.sqrt(np.partition(_squared_distances(Z, a["bank"].astype(np.float64)), k, axis=1)[:, k])
        return np.sqrt(_squared_distances(Z @ a["W"], a["centres"]).min(1))

    def predict(self, waves: list[np.ndarray]) -> list[dict]:
        """Per wave: ``label`` (or ``unknown`` above the novelty threshold), ``probabilities``, ``novelty``."""
        proba, novelty = self.classify(self.embed(waves))
        threshold = self.manifest["novelty"]["threshold"]
        return [{"label": "unknown" if threshold is not None and n > threshold else self.labels[int(p.argmax())],
                 "probabilities": dict(zip(self.labels, p.round(6).tolist())), "novelty": float(n)}
                for p, n in zip(proba, novelty)]


def chunks(wave: np.ndarray, limit: int) -> list[np.ndarray]:
    """``wave`` cut into the fewest equal pieces of at most ``limit`` samples (Whisper's 30 s window): the cut of
    ``ser.features.whisper.WhisperEncoder.chunks`` (this file imports nothing from ser; a test compares them)."""
    edges = np.linspace(0, len(wave), max(1, math.ceil(len(wave) / limit)) + 1).round().astype(int)
    return [wave[a:b] for a, b in zip(edges[:-1], edges[1:])]


def _padded(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Arrays zero-padded on their last axis into one float32 batch, and their real lengths (int64)."""
    lengths = np.array([a.shape[-1] for a in arrays], np.int64)
    batch = np.zeros((len(arrays), *arrays[0].shape[:-1], int(lengths.max())), np.float32)
    for row, a in zip(batch, arrays):
        row[..., : a.shape[-1]] = a
    return batch, lengths


def _merge(pooled: np.ndarray, frames: np.ndarray, pooling: str, blocks: int) -> np.ndarray:
    """One clip's vector from its chunks' pooled rows: means weighted by frames; standard deviations by the
    parallel variance formula (a ``mean_std`` vector is ``blocks`` blocks of [mean, std])."""
    if len(pooled) == 1:
        return pooled[0]
    w = (frames / frames.sum())[:, None, None]
    if pooling == "mean":
        return (pooled * w[:, 0]).sum(0).astype(np.float32)
    parts = pooled.astype(np.float64).reshape(len(pooled), blocks, 2, -1)
    mean, std = parts[:, :, 0], parts[:, :, 1]
    m = (mean * w).sum(0)
    s = np.sqrt((w * (std ** 2 + (mean - m) ** 2)).sum(0))
    return np.stack([m, s], 1).reshape(-1).astype(np.float32)


def _squared_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return np.maximum((A ** 2).sum(1)[:, None] - 2 * A @ B.T + (B ** 2).sum(1)[None], 0.0)
