"""Build the clip manifest: scan a corpus, merge/keep labels, read every clip once."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

import pandas as pd
from tqdm import tqdm

from ser.config import Params
from ser.corpora import registry
from ser.corpora.audio import probe
from ser.corpora.emotions import speakers_phrase
from ser.errors import DatasetError
from ser.models import feasibility

log = logging.getLogger(__name__)


def scan_corpus(params: Params) -> pd.DataFrame:
    """Fetch the corpus if it has a fetch step (download, generate) and list its clips (no audio read
    yet), with a ``reason`` column: why the scan could not use a file, "" for a usable clip."""
    root = params.data.root(params.dataset)
    corpus = registry.get(params.dataset)
    if hasattr(corpus, "fetch"):
        corpus.fetch(root, params)
    listed = corpus.scan(root, params)
    return listed if "reason" in listed else listed.assign(reason="")  # a scan that skips nothing may omit it


def select_labels(clips: pd.DataFrame, labels: Sequence[str] | None,
                  label_map: dict[str, str] | None) -> pd.DataFrame:
    """Apply ``data.label_map`` (labels not in it stay as they are), then keep ``data.labels``.

    A ``label_map`` key or a ``data.labels`` entry that names no label of the corpus is refused: a
    typo would otherwise drop that class's clips without a trace."""
    clips = clips.copy()
    present = sorted(clips["label"].unique())
    if label_map:
        unknown = sorted(set(label_map) - set(present))
        if unknown:
            raise DatasetError(f"data.label_map: key(s) {unknown} name no label of this corpus; its labels are "
                               f"{present}")
        clips["label"] = clips["label"].map(lambda x: label_map.get(x, x))
    if labels:
        unknown = sorted(set(labels) - set(clips["label"]))
        if unknown:
            raise DatasetError(f"data.labels: {unknown} not in this corpus; its labels are "
                               f"{sorted(clips['label'].unique())} (after data.label_map)")
        clips = clips[clips["label"].isin(labels)]
    return clips.reset_index(drop=True)


def read_clips(clips: pd.DataFrame, min_duration: float, max_duration: float | None, silence_dbfs: float,
               workers: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read every clip once, in parallel; return (usable clips, excluded clips with a reason).

    Besides unreadable, too short and silent clips, this excludes clips longer than ``max_duration``
    and every further copy of the same audio (same content hash) under another clip id: copies on
    both sides of a fold would test a clip the model was trained on."""
    def one(path: str):
        return probe(path, min_duration, silence_dbfs, max_duration)

    with ThreadPoolExecutor(workers) as pool:
        probes = list(tqdm(pool.map(one, clips["path"]), total=len(clips), desc="reading clips",
                           unit="clip", mininterval=1.0))
    info = pd.DataFrame([asdict(p) for p in probes], index=clips.index)
    full = pd.concat([clips, info], axis=1)
    usable = full["reason"] == ""
    first = full[usable].drop_duplicates("sha1").set_index("sha1")["clip_id"]
    copy = usable & full["sha1"].duplicated()
    full.loc[copy, "reason"] = [f"duplicate audio: same content as clip {first[h]}" for h in full.loc[copy, "sha1"]]
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
        "excluded_by_step": {k: int(v) for k, v in excluded["step"].value_counts().items()},
        "excluded_reasons": {k: int(v) for k, v in excluded["reason"].str.split(r"[:(]").str[0].str.strip()
                             .value_counts().items()},
    }


def build_manifest(params: Params) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The prepare stage's work: manifest, exclusion report and summary."""
    listed = scan_corpus(params)
    unusable = listed["reason"] != ""  # skipped by the scan: kept in the report, never read
    clips = select_labels(registry.usable(listed), params.data.labels, params.data.label_map)
    if clips["clip_id"].duplicated().any():
        dup = clips.loc[clips["clip_id"].duplicated(), "clip_id"].iloc[0]
        raise DatasetError(f"clip id {dup!r} appears twice in the {params.dataset} corpus listing")
    log.info("%s: %d clips listed, reading each once with %d workers", params.dataset, len(clips),
             params.data.workers)
    manifest, excluded = read_clips(clips, params.data.min_duration, params.data.max_duration,
                                    params.data.silence_dbfs, params.data.workers)
    skipped = listed.loc[unusable, excluded.columns]
    excluded = pd.concat([skipped.assign(step="scan"), excluded.assign(step="prepare")], ignore_index=True)
    for row in excluded.itertuples():
        log.warning("excluded %s: %s", row.path, row.reason)
    if manifest.empty:
        raise DatasetError(f"no usable clips in {params.dataset}: all {len(excluded)} were excluded "
                           "(see data/excluded.csv)")
    summary = summarize(params, manifest, excluded)
    log.info("manifest: %d clips, %s, %.2f h; %d excluded (%d duplicate audio)", summary["clips"],
             speakers_phrase(manifest["speaker"]), summary["hours"], summary["excluded"],
             summary["excluded_reasons"].get("duplicate audio", 0))
    return manifest, excluded, summary


def prepare(params: Params) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """:func:`build_manifest`, then the check that training can run on it (:mod:`ser.models.feasibility`),
    so a corpus that cannot be cross-validated as configured fails now, not after extraction."""
    manifest, excluded, summary = build_manifest(params)
    feasible = feasibility.check(manifest, params.cv, params.seed)
    log.info("train will use %s", feasible.plan.protocol)
    for note in feasible.notes:
        log.info("cv: %s", note)
    return manifest, excluded, {**summary, "cv": feasible.summary()}
