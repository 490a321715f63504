"""Several corpora pooled into one training set: ``dataset: multi`` with ``multi.corpora``.

Each entry is read by its own reader (``dataset``, ``dir`` or ``csv``), so the pool holds every corpus in its
published layout. Labels meet through the canonical emotion names the readers give (``data.labels`` keeps the
shared ones, ``data.label_map`` merges); clip and speaker ids are prefixed with the entry's name
(``ravdess/03-01-...``, ``ravdess/01``), so two corpora never share a speaker id; a ``corpus`` column says
where each clip comes from. ``cv.group_by: corpus`` then holds out one corpus per fold (leave-one-corpus-out:
the figure for "a corpus the model never heard"). Embeddings are cached per clip content, so adding a corpus
extracts only its clips.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from pydantic import Field

from ser.corpora import registry
from ser.corpora.emotions import NO_SPEAKER
from ser.corpora.spec import CorpusSpec
from ser.section import Section

if TYPE_CHECKING:
    from ser.config import Params


class MultiParams(Section):
    """params.yaml ``multi``: the corpora of ``dataset: multi``."""

    corpora: list[CorpusSpec] = Field(default_factory=list, description="two or more: {name, dataset, dir | csv}")


def check(params: Params, need_data: bool) -> None:
    """Two or more entries with distinct names, each readable as its own dataset."""
    entries = params.multi.corpora
    if len(entries) < 2:
        raise ValueError("dataset multi pools two or more corpora: list them in multi.corpora, each {name, dataset, "
                         "dir} (or csv for dataset folder)")
    names = [e.name for e in entries]
    if len(set(names)) < len(names):
        raise ValueError(f"multi.corpora: two entries share a name ({', '.join(names)}): give each its own")
    for entry in entries:
        if entry.dataset not in registry.REGISTRY or entry.dataset == "multi":
            raise ValueError(f"multi.corpora {entry.name}: dataset {entry.dataset!r} is not one of "
                             f"{', '.join(d for d in registry.REGISTRY if d != 'multi')}")
        try:
            registry.check(entry.params(params), need_data)
        except ValueError as err:
            raise ValueError(f"multi.corpora {entry.name}: {err}") from None


def fetch(root: Path, params: Params) -> None:
    """Download or generate the entries that are fetched (CREMA-D, synthetic) into their own folders."""
    for entry in params.multi.corpora:
        module = registry.get(entry.dataset)
        if hasattr(module, "fetch"):
            module.fetch(entry.root(params), entry.params(params))


def scan(root: Path, params: Params) -> pd.DataFrame:
    """Every entry's clip table, ids prefixed with its name, and its name in a ``corpus`` column."""
    frames = []
    for entry in params.multi.corpora:
        listed = registry.get(entry.dataset).scan(entry.root(params), entry.params(params))
        if "reason" not in listed:
            listed = listed.assign(reason="")
        speaker = listed["speaker"].astype(str)
        frames.append(listed.assign(clip_id=entry.name + "/" + listed["clip_id"].astype(str),
                                    speaker=speaker.where(speaker == NO_SPEAKER, entry.name + "/" + speaker),
                                    corpus=entry.name))
    columns = ["clip_id", "path", "label", "speaker"]
    pooled = pd.concat(frames, ignore_index=True)
    return pooled[columns + [c for c in pooled.columns if c not in columns]]
