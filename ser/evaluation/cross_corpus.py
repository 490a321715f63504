"""Cross-corpus tests: the final model (``models/``) predicts other corpora, through predict's code path.

Each ``cross_corpus`` entry names a dataset the project reads (and its folder or CSV). Its manifest is built
as prepare builds one; clips of classes the training corpus lacks are left out and counted (labels meet
through the canonical emotion names, :mod:`ser.corpora.emotions`); the rest are predicted with the
final model (``unknown`` rejections counted, the closest class scored). One metrics block per corpus:
accuracy, UAR, macro F1 with a speaker-bootstrap 95% interval, and what was left out.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ser.evaluation.cross_params import CrossCorpus

log = logging.getLogger(__name__)


def corpus_params(params, spec: CrossCorpus):
    """``params`` reading ``spec``'s corpus instead (every label kept: unmatched ones are counted later)."""
    data = params.data.model_copy(update={"dir": spec.dir, "csv": spec.csv, "labels": None, "label_map": None})
    return params.model_copy(update={"dataset": spec.dataset, "data": data})


def evaluate_corpus(params, spec: CrossCorpus, models: str | Path = "models") -> tuple[dict, pd.DataFrame]:
    """(metrics block, per-clip predictions) of the final model on ``spec``'s corpus."""
    from ser.corpora.manifest import build_manifest
    from ser.evaluation.bootstrap import speaker_bootstrap
    from ser.evaluation.metrics import HEADLINE, scores
    from ser.inference.predict import Predictor

    manifest, excluded, _ = build_manifest(corpus_params(params, spec))
    predictor = Predictor.load(models, workers=params.data.workers)
    labels = predictor.labels
    known = manifest["label"].isin(labels)
    left_out = manifest.loc[~known, "label"].value_counts().sort_index()
    if not known.any():
        raise ValueError(f"cross_corpus {spec.name}: none of its classes ({', '.join(left_out.index)}) is one the "
                         f"model knows ({', '.join(labels)})")
    clips = manifest[known].reset_index(drop=True)
    speakers = dict(zip(clips["path"].map(lambda p: str(Path(p).resolve())), clips["speaker"].astype(str)))
    log.info("cross_corpus %s: predicting %d clips (%d left out: classes the model lacks)", spec.name, len(clips),
             int((~known).sum()))
    results = list(predictor.predict(clips["path"], speakers if predictor.speaker_norm else None))
    ok = np.array([r.ok for r in results])
    out = clips.loc[ok, ["clip_id", "speaker", "label"]].rename(columns={"label": "actual"}).reset_index(drop=True)
    out["predicted"] = [labels[int(np.argmax(r.proba))] for r in results if r.ok]
    out["unknown"] = [r.unknown for r in results if r.ok]
    present = [lab for lab in labels if lab in set(out["actual"])]
    s = scores(out["actual"], out["predicted"], present)
    ci = speaker_bootstrap(out, present, params.seed)
    block = {**{m: round(s[m], 4) for m in HEADLINE},
             "uar_ci95_low": round(ci["uar"][0], 4), "uar_ci95_high": round(ci["uar"][1], 4),
             "clips": int(len(out)), "speakers": int(out["speaker"].nunique()), "classes": len(present),
             "rejected_unknown": round(float(out["unknown"].mean()), 4),
             "left_out_clips": int((~known).sum()), "left_out_classes": ", ".join(left_out.index) or "none",
             "excluded_clips": int(len(excluded)), "failed_clips": int((~ok).sum())}
    log.info("cross_corpus %s: UAR %.3f (95%% CI %.3f-%.3f over %d speakers), accuracy %.3f on %d clips, %.1f%% "
             "rejected as unknown", spec.name, s["uar"], *ci["uar"], block["speakers"], s["accuracy"], len(out),
             100 * block["rejected_unknown"])
    return block, out.assign(corpus=spec.name)
