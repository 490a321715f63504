"""Cross-corpus tests: the final model (``models/``) predicts other corpora, through predict's code path.

Each ``cross_corpus`` entry names a dataset the project reads (and its folder or CSV). Its manifest is built
as prepare builds one, and the training run's label settings apply to it: ``data.label_map`` merges its labels
(keys it lacks are skipped), ``data.labels`` keeps the same classes. The classes scored are those both corpora
have, or ``cross_corpus[].labels`` (e.g. the four classes most corpora share, so that rows compare); clips of
other classes are left out and counted, and each clip is predicted among the scored classes (the model's
probabilities of the others set aside, the rest renormalised). A test corpus sharing audio with the training
corpus (same content hash) is refused: it would test clips the model was trained on. One metrics block per
corpus: accuracy, UAR, macro F1, a speaker-bootstrap interval (``over`` says speakers or clips), the share
rejected as ``unknown``, the share of the most predicted class, and what was left out.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ser.evaluation.cross_params import CrossCorpus

log = logging.getLogger(__name__)
COLUMNS = ["corpus", "clip_id", "speaker", "actual", "predicted", "unknown", "error"]  # results/cross_corpus.csv


def scored(manifest: pd.DataFrame, params, spec: CrossCorpus, model_labels: list[str]) -> tuple[pd.DataFrame, list]:
    """(the manifest with the training run's labels, the classes scored). ValueError naming both label sets when
    fewer than two classes are shared, or a ``cross_corpus[].labels`` class the model does not know."""
    label_map = params.data.label_map or {}
    labels = manifest["label"].map(lambda x: label_map.get(x, x))
    if params.data.labels:
        labels = labels.where(labels.isin(params.data.labels), labels + " (not in data.labels)")
    wanted = spec.labels or model_labels
    unknown = sorted(set(wanted) - set(model_labels))
    if unknown:
        raise ValueError(f"cross_corpus {spec.name}: labels {unknown} are not classes of the model "
                         f"({', '.join(model_labels)})")
    shared = [lab for lab in wanted if lab in set(labels)]
    if len(shared) < 2:
        raise ValueError(f"cross_corpus {spec.name}: {len(shared)} class(es) shared ({', '.join(shared) or 'none'}), "
                         f"two or more are needed to score it. The model knows {', '.join(model_labels)}; the corpus "
                         f"has {', '.join(sorted(set(labels)))} (after the training run's data.label_map"
                         f"{' and cross_corpus labels' if spec.labels else ''})")
    return manifest.assign(label=labels), shared


def refuse_shared_audio(clips: pd.DataFrame, training: pd.DataFrame, name: str) -> None:
    """ValueError when ``clips`` hold audio of the training manifest (same sha1): a test of trained-on clips."""
    shared = clips[clips["sha1"].isin(set(training["sha1"]))]
    if len(shared):
        raise ValueError(f"cross_corpus {name}: {len(shared)} of its {len(clips)} clips hold audio of the training "
                         f"corpus (same content, e.g. {shared['path'].iloc[0]}): a cross-corpus test of clips the "
                         "model was trained on says nothing; point the entry at another corpus")


def evaluate_corpus(params, spec: CrossCorpus, models: str | Path = "models",
                    training: pd.DataFrame | None = None) -> tuple[dict, pd.DataFrame]:
    """(metrics block, per-clip predictions) of the final model on ``spec``'s corpus; a clip it could not
    predict has an ``error`` (and counts against ``features.max_failed_fraction``). ``training`` is the
    training manifest: its audio must not recur."""
    from ser.corpora.manifest import build_manifest
    from ser.evaluation.bootstrap import speaker_bootstrap
    from ser.evaluation.metrics import HEADLINE, scores
    from ser.features.speaker_norm import TRANSDUCTIVE
    from ser.inference.predict import Predictor

    manifest, excluded, _ = build_manifest(spec.params(params))
    predictor = Predictor.load(models, workers=params.data.workers)
    manifest, classes = scored(manifest, params, spec, predictor.labels)
    if training is not None:
        refuse_shared_audio(manifest, training, spec.name)
    known = manifest["label"].isin(classes)
    left_out = manifest.loc[~known, "label"].value_counts().sort_index()
    clips = manifest[known].reset_index(drop=True)
    # a normalised model standardises each speaker's (features.normalize: speaker) or the corpus's (corpus) clips
    # with their own statistics: transductive, said in the block
    speakers = (spec.name if predictor.group_norm == "corpus" else
                dict(zip(clips["path"].map(lambda p: str(Path(p).resolve())), clips["speaker"].astype(str))))
    log.info("cross_corpus %s: predicting %d clips of %d classes (%d left out: classes not scored)", spec.name,
             len(clips), len(classes), int((~known).sum()))
    results = predict_all(predictor, clips, speakers if predictor.group_norm else None, spec.name,
                          params.features.max_failed_fraction)
    ok = np.array([r.ok for r in results])
    columns = [predictor.labels.index(lab) for lab in classes]
    out = clips.loc[ok, ["clip_id", "speaker", "label"]].rename(columns={"label": "actual"}).reset_index(drop=True)
    out["predicted"] = [classes[int(np.argmax(r.proba[columns]))] for r in results if r.ok]
    out["unknown"] = [r.unknown for r in results if r.ok]
    speech = np.array([np.nan if r.speech is None else r.speech for r in results if r.ok])
    present = [lab for lab in classes if lab in set(out["actual"])]
    s = scores(out["actual"], out["predicted"], present)
    ci = speaker_bootstrap(out, present, params.seed)
    shares = out["predicted"].value_counts(normalize=True)
    block = {**{m: round(s[m], 4) for m in HEADLINE},
             **({"uar_ci95": ci["none"]} if ci["uar"] is None else
                {"uar_ci95_low": round(ci["uar"][0], 4), "uar_ci95_high": round(ci["uar"][1], 4)}), "over": ci["over"],
             "protocol": f"the final model (trained on all of {params.dataset}) on every clip of {spec.name} in the "
                         f"{len(present)} classes scored, each predicted among them"
                         + (TRANSDUCTIVE[predictor.group_norm] if predictor.group_norm else ""),
             "clips": int(len(out)), "speakers": int(out["speaker"].nunique()), "classes": len(present),
             "scored_classes": ", ".join(present), "chance_uar": round(1 / len(present), 4),
             "rejected_unknown": round(float(out["unknown"].mean()), 4),
             **({"rejected_not_speech": round(float((speech < predictor.speech_threshold).mean()), 4)}
                if predictor.speech_threshold is not None else {}),
             "most_predicted": shares.index[0], "most_predicted_share": round(float(shares.iloc[0]), 4),
             "left_out_clips": int((~known).sum()), "left_out_classes": ", ".join(left_out.index) or "none",
             "excluded_clips": int(len(excluded)), "failed_clips": int((~ok).sum())}
    interval = ci["none"] if ci["uar"] is None else f"95% CI {ci['uar'][0]:.3f}-{ci['uar'][1]:.3f} over {ci['over']}"
    log.info("cross_corpus %s: UAR %.3f (%s; %d speakers), accuracy %.3f on %d clips, %.1f%% rejected "
             "as unknown, %.0f%% predicted %s", spec.name, s["uar"], interval, block["speakers"],
             s["accuracy"], len(out), 100 * block["rejected_unknown"], 100 * block["most_predicted_share"],
             block["most_predicted"])
    failed = clips.loc[~ok, ["clip_id", "speaker", "label"]].rename(columns={"label": "actual"}).assign(
        error=[r.error for r in results if not r.ok])
    return block, pd.concat([out.assign(error=""), failed], ignore_index=True).assign(corpus=spec.name)


def predict_all(predictor, clips: pd.DataFrame, speakers, name: str, max_failed_fraction: float) -> list:
    """Every clip's FileResult, with progress; a clip that fails is logged, and more failures than
    ``features.max_failed_fraction`` allows stop the test (a broken model or reader, not a few clips)."""
    from ser.features.extract import FailureBudget

    budget = FailureBudget(int(max_failed_fraction * len(clips)), len(clips),
                           "the test corpus is predicted again from the start")
    results, failures = [], {}
    for clip_id, result in zip(clips["clip_id"], predictor.predict(clips["path"], speakers, f"cross_corpus {name}")):
        results.append(result)
        if not result.ok:
            failures[(clip_id, 0)] = result.error
            log.warning("cross_corpus %s: %s left out: %s", name, result.path, result.error)
            budget.check(failures)
    return results
