"""Artifact writing that never leaves a half-written file: write to a temp path, then rename."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; it replaces ``path`` only if the block succeeds.

    The temp file is created with mode 0666 minus the umask, as a plain ``open(path, "w")`` would
    (``tempfile.mkstemp`` would leave 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_beside(path)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _create_beside(path: Path) -> str:
    """Create a new empty file ``.<name>.<random>.tmp<suffix>`` in ``path``'s folder; return its path."""
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp{path.suffix}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return str(tmp)


def _write(path: str | Path, writer: Callable[[Path], Any]) -> Path:
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_json(path: str | Path, data: Any) -> Path:
    """Write pretty JSON atomically."""
    return _write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=_plain) + "\n"))


def write_csv(path: str | Path, frame: pd.DataFrame) -> Path:
    """Write a CSV without the index, atomically."""
    return _write(path, lambda tmp: frame.to_csv(tmp, index=False))


def write_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write a compressed npz atomically."""
    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    return _write(path, save)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


# columns that hold text whatever they look like: labels such as 01, nan, NA or 3.5 stay as written
TEXT_COLUMNS = frozenset({"clip_id", "path", "label", "speaker", "actual", "predicted", "sha1", "sex", "reason",
                          "text", "corpus", "error"})


def read_table(path: str | Path, usecols: list[str] | None = None) -> pd.DataFrame:
    """Read a CSV this project wrote: text columns as strings, never parsed as numbers or NaN."""
    header = pd.read_csv(path, nrows=0).columns
    return pd.read_csv(path, usecols=usecols, dtype={c: str for c in header if c in TEXT_COLUMNS},
                       keep_default_na=False, na_values={c: [""] for c in header if c not in TEXT_COLUMNS})
