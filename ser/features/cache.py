"""Per-clip embedding cache: one small .npy file per vector, keyed on audio content and feature identity.

Layout::

    <root>/<extractor>-<hash of the extractor's identity>/identity.json
    <root>/<extractor>-<hash>/<sha1[:2]>/<sha1>.npy                  original clip (aug 0)
    <root>/<extractor>-<hash>/<sha1[:2]>/<sha1>.<aug>.<augkey>.npy   augmented copy aug

``sha1`` is the manifest's hash of the clip's bytes; the directory hash is of the extractor's
identity (``ser.features.identity``: settings, weights' fingerprint, features version, library
versions), so vectors of an older computation are never mixed with new ones. ``augkey`` hashes
the augmentation settings, the seed and the clip id (copies are seeded by clip id), but not the
number of copies, so raising n_augmentations adds only the new copies and changing augmentation
settings leaves the originals cached.

One file per vector is the simplest store that survives being killed at any moment: each file is
written to a temp name and renamed, so an entry is either complete or absent, nothing needs a
lock or a journal, and a resumed run just skips what exists. 7442 clips x 3 copies is ~22k files
of a few kB, which any file system handles; the cost is one open per vector when assembling.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from ser.artifacts import atomic_path, write_json

log = logging.getLogger(__name__)


def digest(value: object) -> str:
    """A stable hash of JSON-able settings."""
    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


class EmbeddingCache:
    """Vectors of one extractor identity; ``augment`` (settings of the copies) may be None when there are none."""

    def __init__(self, root: str | Path, identity: dict, augment: dict | None = None):
        self.dir = Path(root) / f"{identity['extractor']}-{digest(identity)[:16]}"
        self.augment = augment
        if not (self.dir / "identity.json").exists():
            write_json(self.dir / "identity.json", identity)

    def path(self, sha1: str, aug: int = 0, clip_id: str = "") -> Path:
        if aug == 0:
            name = f"{sha1}.npy"
        else:
            if self.augment is None:
                raise ValueError("augmented copies need the augmentation settings")
            name = f"{sha1}.{aug}.{digest([self.augment, clip_id])[:12]}.npy"
        return self.dir / sha1[:2] / name

    def has(self, sha1: str, aug: int = 0, clip_id: str = "") -> bool:
        return self.path(sha1, aug, clip_id).is_file()

    def get(self, sha1: str, aug: int = 0, clip_id: str = "", mmap: bool = False) -> np.ndarray | None:
        """The stored vector (or frames), or None when absent; an unreadable entry is deleted (and so
        recomputed next run). ``mmap`` maps the file instead of reading it (to learn its shape)."""
        path = self.path(sha1, aug, clip_id)
        try:
            return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError) as err:
            log.warning("deleting unreadable cache entry %s: %s", path, err)
            path.unlink(missing_ok=True)
            return None

    def put(self, vector: np.ndarray, sha1: str, aug: int = 0, clip_id: str = "") -> None:
        """Store one vector (float32) or frame array (float16) atomically (complete or absent, never half-written)."""
        with atomic_path(self.path(sha1, aug, clip_id)) as tmp, open(tmp, "wb") as f:
            np.save(f, vector if vector.ndim > 1 else np.asarray(vector, dtype=np.float32))
