"""Checks that a downloaded file is the real thing: a complete WAV, a UTF-8 CSV, not an LFS pointer or
an HTML error page."""

from __future__ import annotations

import os
import struct
from pathlib import Path

_LFS = b"version https://git-lfs"


def _sniff(head: bytes) -> None:
    """Reject the usual stand-ins for a real file: a Git LFS pointer or an HTML page."""
    if head.startswith(_LFS):
        raise ValueError("a Git LFS pointer, not the file itself")
    start = head.lstrip(b"\xef\xbb\xbf").lstrip().lower()
    if start.startswith((b"<!doctype", b"<html")):
        raise ValueError("an HTML page, not the file itself")


def verify_wav(path: Path) -> None:
    """Raise ValueError unless ``path`` is a complete RIFF/WAVE file (fmt and data chunks all there)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(512)
        if not head:
            raise ValueError("empty file")
        _sniff(head)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError("not a RIFF/WAVE file")
        riff_end = 8 + struct.unpack("<I", head[4:8])[0]
        if riff_end > size:
            raise ValueError(f"truncated: the RIFF header says {riff_end} bytes, the file holds {size}")
        _walk_chunks(f, size)


def _walk_chunks(f, end: int) -> None:
    """Follow the chunk list up to the data chunk; it must follow a fmt chunk and end by byte ``end``."""
    pos, seen_fmt = 12, False
    while pos + 8 <= end:
        f.seek(pos)
        chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
        body_end = pos + 8 + chunk_size
        if chunk_id == b"data":
            if not seen_fmt:
                raise ValueError("data chunk before any fmt chunk")
            if body_end > end:
                raise ValueError(f"truncated: the data chunk says {chunk_size} bytes, "
                                 f"the file holds {end - pos - 8}")
            return
        seen_fmt = seen_fmt or chunk_id == b"fmt "
        pos = body_end + (chunk_size & 1)   # chunks are word-aligned
    raise ValueError("truncated: no data chunk")


def verify_csv(path: Path) -> None:
    """Raise ValueError unless ``path`` is non-empty UTF-8 text with a comma in its first line."""
    raw = Path(path).read_bytes()
    if not raw.strip():
        raise ValueError("empty file")
    _sniff(raw[:512])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if "," not in text.splitlines()[0]:
        raise ValueError("no comma in the first line, not a CSV table")
