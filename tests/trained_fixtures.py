"""models/ folders made the way the pipeline makes them: the extraction library, then the library's
training function (``ser.models.train.train``), on small data. Nothing here writes a model card by hand."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import soundfile as sf

from ser import features
from ser.config import Params
from ser.embeddings import with_manifest
from ser.features.extract import Extraction, extract, feature_params
from ser.features.speaker_norm import by_group, normalisation_groups
from ser.models.train import Trained, train


def held_out_corpus(root: Path, speakers: int, held: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """A synthetic corpus of ``speakers`` (4 classes, 4 clips each, 1.2 s) in ``root``/corpus: the clips of the
    speakers not ``held`` (to train on) and the sorted files of the ``held`` ones (to predict)."""
    from ser.corpora import synthetic

    synthetic.generate(root / "corpus", speakers=speakers, clips=4, classes=["angry", "happy", "neutral", "sad"],
                       duration=1.2, seed=0)
    clips = synthetic.scan(root / "corpus", Params())
    test = clips["speaker"].isin(held).to_numpy()
    return clips[~test].reset_index(drop=True), sorted(clips.loc[test, "path"])


def manifest(clips: pd.DataFrame) -> pd.DataFrame:
    """clip_id, path, label, speaker plus the sha1 and duration prepare adds."""
    return clips.assign(sha1=[hashlib.sha1(Path(p).read_bytes()).hexdigest() for p in clips["path"]],
                        duration=[sf.info(p).duration for p in clips["path"]])


def train_models(root: Path, clips: pd.DataFrame, params: Params, cache: Path | None = None
                 ) -> tuple[Trained, Extraction]:
    """Embed ``clips`` (cache in ``cache``, default ``root``/cache) and train ``root``/models on them."""
    listed = clips if {"sha1", "duration"} <= set(clips.columns) else manifest(clips)
    extractor = features.build(params)
    embedded = extract(listed, extractor, cache or root / "cache", params.augment, params.seed,
                       params.features.batch_seconds, workers=2, frames_path=root / "frames.npy")
    embedded.meta = with_manifest(embedded.meta, listed)  # text, corpus: as the train stage reads them
    by = params.features.normalize
    if by != "none":  # as the extract stage does
        groups = normalisation_groups(embedded.meta, listed, by, params.dataset)
        embedded.X = by_group(embedded.X, groups, embedded.meta["aug"].to_numpy() == 0, by)
    described = {"identity": extractor.identity(), "feature_params": feature_params(params),
                 "blocks": features.blocks(extractor)}  # as the extract stage writes features.json
    used = listed["clip_id"].isin(embedded.meta["clip_id"])
    return train(embedded.X, embedded.meta, params, described, root / "models", listed.loc[used, "duration"]), embedded
