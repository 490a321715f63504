"""Corpus registry. Each module has

- ``scan(root, params) -> DataFrame``: the clip table (clip_id, path, label, speaker, extras) of
  the corpus in ``root`` (``data.root``); no audio is read. An optional ``reason`` column says why a
  listed file cannot be used ("" for a usable clip): prepare reports those in data/excluded.csv;
- optionally ``fetch(root, params)``: put the corpus into ``root`` first (download, generate).
  A corpus without it is read from a local copy, so ``root`` must be a folder before prepare;
- optionally ``check(params, need_data)``: raise ValueError when params cannot locate the corpus
  (with ``need_data``, also when it is not there); it replaces the local-copy check above.

Adding a corpus means one module in :mod:`ser.corpora` and one line here.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from ser.config import Params

REGISTRY = {
    "cremad": "ser.corpora.cremad",
    "ravdess": "ser.corpora.ravdess",
    "tess": "ser.corpora.tess",
    "savee": "ser.corpora.savee",
    "emodb": "ser.corpora.emodb",
    "emovo": "ser.corpora.emovo",
    "nemo": "ser.corpora.nemo",
    "urdu": "ser.corpora.urdu",
    "folder": "ser.corpora.folder",
    "multi": "ser.corpora.multi",  # several of the above pooled (multi.corpora)
    "synthetic": "ser.corpora.synthetic",
}


def get(name: str) -> ModuleType:
    """Import the module of one corpus by its params.yaml name."""
    return importlib.import_module(REGISTRY[name])


def check(params: Params, need_data: bool = False) -> None:
    """Raise ValueError, naming the key and the fix, when params cannot locate ``dataset``; with
    ``need_data`` (prepare) also when a corpus that is read from a local copy is not there."""
    corpus = get(params.dataset)
    if hasattr(corpus, "check"):
        corpus.check(params, need_data)
    elif need_data and not hasattr(corpus, "fetch"):
        require_root(params)


def check_run(params: Params) -> None:
    """Raise ValueError, naming the key, when the ``cross_corpus`` entries or ``cv.group_by`` do not fit."""
    for spec in params.cross_corpus:
        if spec.dataset not in REGISTRY:
            raise ValueError(f"cross_corpus {spec.name}: dataset: {spec.dataset!r} is not one of {', '.join(REGISTRY)}")
    if len({c.name for c in params.cross_corpus}) < len(params.cross_corpus):
        raise ValueError("cross_corpus: two entries share a name: give each its own")
    if params.cv.group_by == "corpus" and params.dataset != "multi":
        raise ValueError("cv.group_by: corpus holds out one corpus per fold: it needs dataset: multi (several "
                         "corpora pooled, multi.corpora); use speaker for one corpus")


def require_root(params: Params) -> None:
    """Raise ValueError when the corpus folder (``data.root``) does not exist."""
    root = params.data.root(params.dataset)
    if not root.is_dir():
        raise ValueError(f"data.dir: {str(root)!r} is not a folder; dataset {params.dataset!r} is read from a "
                         "local copy, so set data.dir to the folder that holds it")


def usable(clips: pd.DataFrame) -> pd.DataFrame:
    """The rows of a scan that name a usable clip (no ``reason``), without the reason column."""
    return clips[clips["reason"] == ""].drop(columns="reason").reset_index(drop=True)
