"""Reading audio: decode once, mix to mono, resample, and say why a clip is unusable.

:class:`AudioCheck` is the one check of decoded audio (no frames, too short, non-finite, silent)
that prepare (:func:`probe`) and predict apply; :data:`AUDIO_EXTENSIONS` the one list of file
names that corpus scanning and predict pick up.
"""

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
# What libsndfile (>= 1.1, as bundled with soundfile >= 0.12) reads, by file name; case-insensitive.
# Ogg holds Vorbis or Opus; .au/.snd are Sun/NeXT; .w64, .rf64 and .caf are large-file WAV cousins.
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
                              ".au", ".snd", ".w64", ".caf", ".rf64"})
LEVEL_FRAME_SECONDS = 0.025  # the frame of the silence check


def _is_junk(path: Path) -> bool:
    """macOS resource forks (``._x.wav``, ``__MACOSX/``) and other hidden files that unzip leaves behind."""
    return path.name.startswith(".") or "__MACOSX" in path.parts


def audio_files(root: str | Path) -> list[Path]:
    """Every audio file below ``root`` (recursively, by :data:`AUDIO_EXTENSIONS`), sorted by path;
    hidden files and unzip debris left out. Corpus scanning and predict's folder inputs use it."""
    return sorted(p for p in Path(root).rglob("*")
                  if p.suffix.lower() in AUDIO_EXTENSIONS and not _is_junk(p) and p.is_file())


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


def probe(path: str | Path, min_duration: float = 0.25, silence_dbfs: float = -60.0,
          max_duration: float | None = None) -> Probe:
    """Read a clip once: hash its bytes and check it decodes and passes :class:`AudioCheck`. A clip whose header
    says it is longer than ``max_duration`` is excluded without decoding it; the rest decode block by block."""
    try:
        blob = Path(path).read_bytes()
    except OSError as err:
        return Probe(reason=f"unreadable: {err.strerror or err}")
    sha1 = hashlib.sha1(blob).hexdigest()
    if not blob:
        return Probe(sha1=sha1, reason=EMPTY)
    try:
        with sf.SoundFile(io.BytesIO(blob)) as f:
            sr, channels = f.samplerate, f.channels
            header = f.frames / sr if sr else 0.0
            if max_duration is not None and header > max_duration:
                return Probe(sha1=sha1, duration=round(header, 4), sample_rate=sr, channels=channels,
                             reason=too_long(header, max_duration))
            check = AudioCheck(sr)
            for block in f.blocks(blocksize=PROBE_BLOCK, dtype="float32", always_2d=True):
                check.add(block.mean(axis=1))
    except Exception as err:  # noqa: BLE001 - libsndfile raises several types for bad input
        return Probe(sha1=sha1, reason=undecodable(err))
    return Probe(sha1=sha1, duration=round(check.n / sr if sr else 0.0, 4), sample_rate=sr, channels=channels,
                 reason=check.reason(min_duration, silence_dbfs, max_duration))


EMPTY = "empty file"
PROBE_BLOCK = 1 << 20  # samples decoded at a time


def undecodable(err: Exception) -> str:
    """The reason given for a file that libsndfile cannot decode."""
    return f"not decodable audio: {decode_error(err)}"


class AudioCheck:
    """Whether a decoded recording is usable, fed block by block (``add``, then ``reason``): its
    length, whether every sample is finite, and its loudest 25 ms (:func:`loudest_frame_dbfs` of
    the whole, without holding it)."""

    def __init__(self, sample_rate: int):
        self.sr = sample_rate
        self.n, self.finite, self.loudest = 0, True, -np.inf
        self._frame = max(1, int(sample_rate * LEVEL_FRAME_SECONDS))
        self._rest = np.zeros(0, np.float32)  # the samples after the last whole level frame

    def add(self, block: np.ndarray) -> None:
        """Take the next mono block."""
        self.n += len(block)
        self.finite = self.finite and bool(np.isfinite(block).all())
        rest = np.concatenate([self._rest, block])
        whole = len(rest) // self._frame * self._frame
        if whole:
            self.loudest = max(self.loudest, loudest_frame_dbfs(rest[:whole], self.sr, LEVEL_FRAME_SECONDS))
        self._rest = rest[whole:]

    def level(self) -> float:
        """dBFS of the loudest frame (of the whole recording when shorter than a frame)."""
        return self.loudest if self.n >= self._frame else loudest_frame_dbfs(self._rest, self.sr, LEVEL_FRAME_SECONDS)

    def reason(self, min_duration: float, silence_dbfs: float, max_duration: float | None = None) -> str:
        """Why the recording is unusable, or "" when it is usable (``max_duration``: training clips
        only; predict cuts long recordings itself)."""
        duration = self.n / self.sr if self.sr else 0.0
        if self.n == 0:
            return "no audio frames"
        if duration < min_duration:
            return f"too short: {duration:.2f} s < data.min_duration {min_duration:g} s"
        if not self.finite:
            return "holds NaN or infinite samples"
        level = self.level()
        if level < silence_dbfs:
            return f"silent: loudest 25 ms at {level:.1f} dBFS < data.silence_dbfs {silence_dbfs:g}"
        if max_duration is not None and duration > max_duration:
            return too_long(duration, max_duration)
        return ""


def too_long(duration: float, max_duration: float) -> str:
    return f"too long: {duration:.1f} s > data.max_duration {max_duration} s"


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
