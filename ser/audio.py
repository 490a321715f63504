"""Reading audio: decode once, mix to mono, resample, and say why a clip is unusable."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

OBJECT_ADDRESS = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")


def load(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sample_rate`` (any format soundfile reads)."""
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return to_mono(audio, sr, sample_rate)


def to_mono(audio: np.ndarray, sr: int, sample_rate: int) -> np.ndarray:
    """Average channels of a (frames, channels) array and resample with soxr (high quality)."""
    mono = audio.mean(axis=1) if audio.ndim == 2 else audio
    if sr != sample_rate:
        mono = soxr.resample(mono, sr, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


@dataclass(frozen=True)
class Probe:
    """What one read of a clip tells: its identity and shape, or why it is excluded."""

    sha1: str = ""
    duration: float = 0.0
    sample_rate: int = 0
    channels: int = 0
    reason: str = ""  # empty when the clip is usable


def probe(path: str | Path, min_duration: float = 0.25, silence_dbfs: float = -60.0) -> Probe:
    """Read a clip once: hash its bytes and check it decodes, is long enough and not silent."""
    try:
        blob = Path(path).read_bytes()
    except OSError as err:
        return Probe(reason=f"unreadable: {err.strerror or err}")
    sha1 = hashlib.sha1(blob).hexdigest()
    if not blob:
        return Probe(sha1=sha1, reason="empty file")
    try:
        audio, sr = sf.read(io.BytesIO(blob), dtype="float32", always_2d=True)
    except Exception as err:  # noqa: BLE001 - libsndfile raises several types for bad input
        return Probe(sha1=sha1, reason=f"not decodable audio: {decode_error(err)}")
    frames, channels = audio.shape
    duration = frames / sr if sr else 0.0
    base = dict(sha1=sha1, duration=round(duration, 4), sample_rate=sr, channels=channels)
    if frames == 0:
        return Probe(**base, reason="no audio frames")
    if duration < min_duration:
        return Probe(**base, reason=f"too short: {duration:.3f} s < data.min_duration {min_duration} s")
    if not np.isfinite(audio).all():
        return Probe(**base, reason="holds NaN or infinite samples")
    level = loudest_frame_dbfs(audio.mean(axis=1), sr)
    if level < silence_dbfs:
        return Probe(**base, reason=f"silent: loudest 25 ms at {level:.1f} dBFS < data.silence_dbfs {silence_dbfs}")
    return Probe(**base)


def decode_error(err: Exception) -> str:
    """Why decoding failed, the same in every run: ``str(err)`` names the in-memory file by its
    address (``<_io.BytesIO object at 0x...>``), so use libsndfile's own message, or drop the address."""
    if isinstance(err, sf.LibsndfileError):  # "Format not recognised." -> "format not recognised"
        text = err.error_string.strip().rstrip(".")
        return (text[:1].lower() + text[1:])[:120] or f"libsndfile error {err.code}"
    text = OBJECT_ADDRESS.sub("the file", str(err)).split("\n")[0].strip()
    return text[:120] or type(err).__name__


def loudest_frame_dbfs(wave: np.ndarray, sr: int, frame_seconds: float = 0.025) -> float:
    """RMS level of the loudest frame: quiet speech with long pauses still counts as sound."""
    n = max(1, int(sr * frame_seconds))
    frames = wave[: len(wave) // n * n].reshape(-1, n) if len(wave) >= n else wave[None, :]
    rms = float(np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1)).max())
    return 20 * np.log10(rms) if rms > 0 else -np.inf
