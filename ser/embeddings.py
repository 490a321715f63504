"""The extract stage's output, read by train, visualize and tuning: ``embeddings/features.npz`` (one
vector per row, or frame offsets) and, for frame sequences (``features.pooling: none``),
``embeddings/frames.npy``, stored so that a corpus of them never has to fit in RAM.

On disk: ``embeddings/frames.npy``, every clip's frames one after the other, shape
(total frames, layers, dim), float16, read a clip at a time (:class:`FrameFile`); ``offsets`` in features.npz says where
clip i starts and ends. :class:`FrameSet` is what the sequence classifiers take as X: indexing it
selects clips without copying frames, and :meth:`FrameSet.batch` pads a few clips into one array.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ser.artifacts import atomic_path

FRAME_DTYPE = np.float16


class FrameSet:
    """Clip i is ``frames[offsets[r]:offsets[r + 1]]`` with r = ``rows[i]``: (frames, layers, dim)."""

    def __init__(self, frames: np.ndarray, offsets: np.ndarray, rows: np.ndarray | None = None, stride: int = 1):
        if frames.ndim != 3:
            raise ValueError(f"frames must be (frames, layers, dim), got shape {frames.shape}")
        self.frames, self.offsets = frames, np.asarray(offsets, np.int64)
        self.rows = np.arange(len(self.offsets) - 1) if rows is None else np.asarray(rows, np.int64)
        self.stride = stride  # consecutive stored frames averaged into each of these (see strided)

    @classmethod
    def from_list(cls, clips: Sequence[np.ndarray]) -> FrameSet:
        """An in-memory set from (frames, layers, dim) arrays (predict's windows, tests), in their dtype
        (float16 features; float32 audio, :mod:`ser.features.audio`)."""
        offsets = np.concatenate([[0], np.cumsum([len(c) for c in clips])])
        return cls(np.concatenate(clips), offsets)

    @classmethod
    def open(cls, path: str | Path, offsets: np.ndarray) -> FrameSet:
        return cls(FrameFile(path), offsets)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index) -> FrameSet:
        return FrameSet(self.frames, self.offsets, self.rows[index], self.stride)

    def strided(self, stride: int, max_bytes: int = 2 << 30) -> FrameSet:
        """These clips in memory (float32) with every ``stride`` consecutive frames averaged, a clip's
        last partial group padded with zeros (as :func:`ser.models.classifiers.sequence.stride_frames`
        does per batch); ``self`` when that would take more than ``max_bytes``, and then callers
        average per batch. Training reads each frame once here instead of once per epoch."""
        lengths = -(-self.lengths // stride)
        per_frame = int(np.prod(self.frames.shape[1:])) * 4
        if stride == 1 or lengths.sum() * per_frame > max_bytes:
            return self
        out = np.zeros((int(lengths.sum()), *self.frames.shape[1:]), np.float32)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        for i, start in enumerate(offsets[:-1]):
            clip = self.clip(i)
            padded = np.zeros((lengths[i] * stride, *clip.shape[1:]), np.float32)
            padded[:len(clip)] = clip
            out[start:start + lengths[i]] = padded.reshape(lengths[i], stride, *clip.shape[1:]).mean(1)
        return FrameSet(out, offsets, stride=stride)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(clips, layers, dim)."""
        return len(self), self.frames.shape[1], self.frames.shape[2]

    @property
    def lengths(self) -> np.ndarray:
        return self.offsets[self.rows + 1] - self.offsets[self.rows]

    def clip(self, i: int) -> np.ndarray:
        r = self.rows[i]
        return np.asarray(self.frames[self.offsets[r]:self.offsets[r + 1]], np.float32)

    def batch(self, index: Sequence[int], max_frames: int | None = None,
              rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Clips ``index`` zero-padded to the longest: (len(index), T, layers, dim) in the frames' dtype
        (float16) and their lengths. A clip longer than ``max_frames`` is cropped to it: at a random
        place with ``rng``, else its centre."""
        clips = []
        for i in index:
            r = self.rows[i]
            start, end = self.offsets[r], self.offsets[r + 1]
            if max_frames and end - start > max_frames:
                start += int(rng.integers(0, end - start - max_frames + 1)) if rng is not None \
                    else (end - start - max_frames) // 2
                end = start + max_frames
            clips.append(self.frames[start:end])
        lengths = np.array([len(c) for c in clips], np.int64)
        out = np.zeros((len(clips), max(int(lengths.max(initial=0)), 1), *self.frames.shape[1:]), self.frames.dtype)
        for row, c in zip(out, clips):
            row[: len(c)] = c
        return out, lengths

    def pooled(self) -> np.ndarray:
        """The mean frame of each clip, averaged over layers: (clips, dim) float32 (for the 2-D map)."""
        return np.stack([self.clip(i).mean((0, 1)) for i in range(len(self))])

    def moments(self, chunk_bytes: int = 1 << 26) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation per (layer, dim) over every frame of these clips, streamed in
        blocks of about ``chunk_bytes`` (as float64)."""
        chunk = max(1, chunk_bytes // (8 * int(np.prod(self.frames.shape[1:]))))
        total = np.zeros(self.frames.shape[1:], np.float64)
        square = np.zeros_like(total)
        count = 0
        for r in self.rows:
            start, end = self.offsets[r], self.offsets[r + 1]
            for s in range(start, end, chunk):
                block = np.asarray(self.frames[s:min(end, s + chunk)], np.float64)
                total += block.sum(0)
                square += (block ** 2).sum(0)
                count += len(block)
        mean = total / max(count, 1)
        return mean.astype(np.float32), np.sqrt(np.maximum(square / max(count, 1) - mean ** 2, 0)).astype(np.float32)

    def fingerprint(self) -> str:
        """A hash of these clips' lengths and of a sample of their frames (first, middle and last of
        each clip): cheap on tens of GB, and any re-extraction changes it."""
        digest = hashlib.sha1(np.ascontiguousarray(self.lengths).tobytes())
        for r in self.rows:
            start, end = self.offsets[r], self.offsets[r + 1]
            for i in sorted({start, (start + end) // 2, end - 1}):
                if start <= i < end:
                    digest.update(np.ascontiguousarray(self.frames[i]).tobytes())
        return digest.hexdigest()


class FrameFile:
    """A frames.npy read with positioned reads, slice by slice (``file[start:end]``). Unlike a memory
    map, the pages read never count as this process's memory: the kernel's page cache holds them."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            self.shape, fortran, self.dtype = read_header(f)
            self.start = f.tell()
        if fortran:
            raise ValueError(f"{path}: frames must be stored in C order")
        self.ndim = len(self.shape)
        self.row_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        self.fd = os.open(self.path, os.O_RDONLY)

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self[int(index):int(index) + 1][0]
        start, stop, step = index.indices(self.shape[0])
        if step != 1:
            raise IndexError("FrameFile reads contiguous frames only")
        count = max(0, stop - start)
        out = np.empty((count, *self.shape[1:]), self.dtype)
        view, pos = memoryview(out).cast("B"), self.start + start * self.row_bytes
        while len(view):
            n = os.preadv(self.fd, [view], pos)
            if n == 0:
                raise OSError(f"{self.path}: truncated frames file")
            view, pos = view[n:], pos + n
        return out

    def __len__(self) -> int:
        return self.shape[0]

    def __del__(self):
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)
            self.fd = None


def as_rows(results: Sequence[np.ndarray]) -> np.ndarray | FrameSet:
    """What a classifier takes for these per-clip results: vectors stacked, or frame sequences as a FrameSet."""
    return np.stack(results) if results[0].ndim == 1 else FrameSet.from_list(results)


def write_frames(path: str | Path, clips: Iterable[np.ndarray], total: int, shape: tuple[int, int],
                 dtype: np.dtype = FRAME_DTYPE) -> Path:
    """Write ``clips`` ((frames, *shape) each, ``total`` frames in all) one after the other into a
    .npy at ``path`` as ``dtype`` with plain writes (memory stays that of one clip), atomically (a temp
    file, then a rename)."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": (total, *shape)}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        written = 0
        for clip in clips:
            f.write(np.ascontiguousarray(clip, dtype).tobytes())
            written += len(clip)
        if written != total:
            raise ValueError(f"write_frames: got {written} frames, expected {total}")
    return Path(path)


MANIFEST_COLUMNS = ("text", "corpus")  # per-clip facts train takes from the manifest, where the corpus has them


def with_manifest(meta: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """``meta`` plus the manifest's ``text`` (transcripts, for fine-tuning's CTC head) and ``corpus`` (pooled
    corpora, for leave-one-corpus-out folds) of each row's clip, where the manifest has them."""
    by_clip = manifest.set_index("clip_id")
    return meta.assign(**{c: meta["clip_id"].map(by_clip[c]).fillna("") for c in MANIFEST_COLUMNS if c in by_clip})


def read_embeddings(path: str | Path = "embeddings/features.npz"):
    """Load an embeddings npz: (X, meta with clip_id, label, speaker, aug per row). X is an array of
    vectors, or, when the npz holds frame offsets, a :class:`FrameSet` read from disk clip by clip
    of ``frames.npy`` beside it."""
    with np.load(path, allow_pickle=False) as z:
        X = FrameSet.open(Path(path).with_name("frames.npy"), z["offsets"]) if "offsets" in z else z["X"]
        meta = pd.DataFrame({c: z[c].astype(str) for c in ("clip_id", "label", "speaker")})
        meta["aug"] = z["aug"].astype(int)
    return X, meta
