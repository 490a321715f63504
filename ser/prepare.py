"""Build the clip manifest: scan a corpus, merge/keep labels, read every clip once."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from . import datasets
from .audio import probe
from .config import Params
from .errors import DatasetError

log = logging.getLogger(__name__)


def scan_corpus(params: Params) -> pd.DataFrame:
    """Fetch or generate the corpus if needed and list its clips (no audio read yet)."""
    root = params.data.root(params.dataset)
    module = datasets.get(params.dataset)
    if params.dataset == "synthetic":
        s = params.synthetic
        log.info("generating the SYNTHETIC corpus in %s (%d speakers x %d classes x %d clips)",
                 root, s.speakers, len(s.classes), s.clips)
        module.generate(root, s.speakers, s.clips, s.classes, s.duration, params.seed)
    elif params.dataset == "cremad":
        module.download(root, workers=params.data.workers)
    if params.dataset == "folder":
        return module.scan(root, Path(params.data.csv) if params.data.csv else None)
    return module.scan(root)


def select_labels(clips: pd.DataFrame, labels: Sequence[str] | None,
                  label_map: dict[str, str] | None) -> pd.DataFrame:
    """Apply ``data.label_map`` (labels not in it stay as they are), then keep ``data.labels``."""
    clips = clips.copy()
    if label_map:
        clips["label"] = clips["label"].map(lambda x: label_map.get(x, x))
    if labels:
        unknown = sorted(set(labels) - set(clips["label"]))
        if unknown:
            raise DatasetError(f"data.labels: {unknown} not in this corpus; its labels are "
                               f"{sorted(clips['label'].unique())} (after data.label_map)")
        clips = clips[clips["label"].isin(labels)]
    return clips.reset_index(drop=True)


def read_clips(clips: pd.DataFrame, min_duration: float, silence_dbfs: float,
               workers: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read every clip once, in parallel; return (usable clips, excluded clips with a reason)."""
    def one(path: str):
        return probe(path, min_duration, silence_dbfs)

    with ThreadPoolExecutor(workers) as pool:
        probes = list(tqdm(pool.map(one, clips["path"]), total=len(clips), desc="reading clips",
                           unit="clip", mininterval=1.0))
    info = pd.DataFrame([asdict(p) for p in probes], index=clips.index)
    full = pd.concat([clips, info], axis=1)
    bad = full["reason"] != ""
    excluded = full.loc[bad, ["clip_id", "path", "label", "speaker", "reason"]].reset_index(drop=True)
    manifest = full.loc[~bad].drop(columns="reason").reset_index(drop=True)
    return manifest, excluded


def summarize(params: Params, manifest: pd.DataFrame, excluded: pd.DataFrame) -> dict:
    """Counts for the log and, later, metrics.json."""
    return {
        "dataset": params.dataset,
        "clips": len(manifest),
        "excluded": len(excluded),
        "speakers": int(manifest["speaker"].nunique()),
        "hours": round(float(manifest["duration"].sum()) / 3600, 3),
        "labels": {k: int(v) for k, v in manifest["label"].value_counts().sort_index().items()},
        "excluded_reasons": {k: int(v) for k, v in excluded["reason"].str.split(":").str[0]
                             .value_counts().items()},
    }


def build_manifest(params: Params) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The prepare stage's work: manifest, exclusion report and summary."""
    clips = select_labels(scan_corpus(params), params.data.labels, params.data.label_map)
    if clips["clip_id"].duplicated().any():
        dup = clips.loc[clips["clip_id"].duplicated(), "clip_id"].iloc[0]
        raise DatasetError(f"clip id {dup!r} appears twice in the {params.dataset} corpus listing")
    log.info("%s: %d clips listed, reading each once with %d workers", params.dataset, len(clips),
             params.data.workers)
    manifest, excluded = read_clips(clips, params.data.min_duration, params.data.silence_dbfs,
                                    params.data.workers)
    for row in excluded.itertuples():
        log.warning("excluded %s: %s", row.path, row.reason)
    if manifest.empty:
        raise DatasetError(f"no usable clips in {params.dataset}: all {len(excluded)} were excluded "
                           "(see data/excluded.csv)")
    summary = summarize(params, manifest, excluded)
    log.info("manifest: %d clips, %d speakers, %.2f h; %d excluded", summary["clips"],
             summary["speakers"], summary["hours"], summary["excluded"])
    return manifest, excluded, summary
