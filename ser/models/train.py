"""Cross-validate the configured classifier (tuning it inside each fold when ``tune.enabled``), then
fit it on all data and save what predict needs: the classifier's files and the model card."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ser.config import Params
from ser.errors import FeatureError
from ser.evaluation.metrics import HEADLINE
from ser.features.speaker_norm import TRANSDUCTIVE
from ser.inference.segment import training_window
from ser.models import classifiers, feasibility, layer_choice, model_card, tuning
from ser.models.calibration import calibrate_oof, calibrated_oof
from ser.models.cv import Plan, cross_validate, fit_facts
from ser.models.layer_choice import LayerChoice
from ser.trust.crossfit import fit_novelty

log = logging.getLogger(__name__)

CURVE_COLUMNS = ["fold", "epoch", "train_loss", "val_loss", "val_uar"]


@dataclass
class Trained:
    oof: pd.DataFrame  # out-of-fold predictions (models/oof.csv)
    summary: dict  # results/cv.json
    curves: pd.DataFrame  # per-epoch history of every fit (results/learning_curves.csv); empty without one


def summarize_folds(per_fold: list[dict], params: Params, cv_plan: Plan, notes: list[str]) -> dict:
    """results/cv.json: per-fold metrics (and best params when tuning) and their mean and std."""
    table = pd.DataFrame(per_fold)
    return {
        "protocol": cv_plan.protocol,
        "notes": notes,
        "classifier": params.classifier,
        "params": getattr(params, params.classifier).model_dump(),
        "folds": per_fold,
        # folds whose test side lacks a class: their UAR averages fewer classes than the others'
        "folds_missing_a_class": [int(f["fold"]) for f in per_fold if f.get("missing_classes")],
        "mean": {m: float(table[m].mean()) for m in HEADLINE},
        "std": {m: float(table[m].std(ddof=0)) for m in HEADLINE},
    }


def learning_curves(histories: dict) -> pd.DataFrame:
    """One row per (fold, epoch) from ``{fold: history_}``; the header alone when there is none."""
    rows = [{"fold": fold, **record} for fold, history in histories.items() for record in history]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def train(X: np.ndarray, meta: pd.DataFrame, params: Params, features: dict, model_dir: str | Path,
          durations: Iterable[float]) -> Trained:
    """Run CV (out-of-fold predictions, fold summary, learning curves), fit the temperature on the
    out-of-fold predictions, and save the final model and its card (``ser.models.model_card``) in ``model_dir``.

    ``features`` is the extract stage's features.json: its identity and feature params go into the
    card, so predict rebuilds the extractor that made ``X``, whatever params.yaml says now.
    ``durations`` (seconds of the training clips) set the windows predict cuts long recordings into.
    """
    if "identity" not in features or "feature_params" not in features:
        raise FeatureError("embeddings/features.json lacks identity or feature_params: it was written by an "
                           "older extract stage; re-run extract (dvc repro)")
    module = classifiers.get(params.classifier)
    labels = sorted(meta["label"].unique())
    y = meta["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    cfg = params.tune
    # prepare checked the manifest; clips left out by extraction can change the answer, so check again
    feasible = feasibility.check(meta[meta["aug"] == 0], params.cv, params.seed)
    log.info("%s on %d rows (%d original clips), %d classes; %s%s", params.classifier, len(X),
             int((meta["aug"] == 0).sum()), len(labels), feasible.plan.protocol,
             f"; tuning {cfg.n_trials} trials per fold" if cfg.enabled else "")
    for note in feasible.notes:
        log.info("cv: %s", note)
    data_fp = tuning.fingerprint(X, meta, params) if cfg.enabled else ""
    blocks = features.get("blocks")
    layers = layer_choice.planned(blocks, params.select)

    def fit_on(rows: np.ndarray, part: str) -> tuple:
        """Tune (if enabled) and fit on these rows; also return what the fold record should say."""
        used, facts = params, {}
        if cfg.enabled:  # on the one layer the classifier reads, when select.layers fixes it (config.py)
            found = tuning.tune(layer_choice.tuned_on(X[rows], blocks, params.select), y[rows], meta.iloc[rows],
                                params, tuning.study_name(params, data_fp, part))
            used = tuning.with_overrides(params, found.best_params)
            facts = {"best_params": found.best_params, "inner_uar": found.best_value, "study": found.study_name,
                     "trials": found.n_trials, "tuning_split": found.split}
        estimator = module.build(used, params.seed)
        if layers:
            s = params.select
            estimator = LayerChoice(estimator, blocks["layers"], layers, s.top, s.inner_folds, s.grid, params.seed)
        model = classifiers.fit(estimator, X[rows], y[rows], meta.iloc[rows], params.cv.group_by)
        return model, facts, used

    def fit_fold(rows: np.ndarray, k: int) -> tuple:
        model, facts, _ = fit_on(rows, f"fold{k}")
        return model, facts

    cv = cross_validate(X, meta, labels, fit_fold, feasible.plan, params.seed)
    summary = summarize_folds(cv.folds, params, feasible.plan, feasible.notes)
    normalize = features["feature_params"].get("features", {}).get("normalize", "none")
    if normalize != "none":
        summary["protocol"] += TRANSDUCTIVE[normalize]
    log.info("CV fold-mean accuracy %.3f, fold-mean UAR %.3f (std over folds %.3f)", summary["mean"]["accuracy"],
             summary["mean"]["uar"], summary["std"]["uar"])

    log.info("fitting the final model on all %d rows", len(X))
    model, facts, used = fit_on(np.arange(len(X)), "final")
    final_params = getattr(used, params.classifier).model_dump()
    summary["final"] = {"rows": len(X), **fit_facts(model)}
    if cfg.enabled:
        summary["tuning"] = {
            "objective": f"UAR on {cfg.validation_fraction:.0%} of the training speakers of each fold "
                         "(original clips), never the test fold",
            "storage": tuning.storage_label(cfg.storage), "n_trials": cfg.n_trials, "final": facts}
    histories = dict(cv.histories)
    history = getattr(classifiers.final_step(model), "history_", None)
    if history is not None:
        histories["final"] = history

    identity, feature_params, read, chosen = features["identity"], features["feature_params"], X, None
    if isinstance(model, LayerChoice):  # the card and predict: the chosen layers' vectors only
        read, model = model.view(X), model.narrowed()
        identity = {**identity, "layers": model.chosen}
        feature_params = {**feature_params, "features": {**feature_params.get("features", {}), "layers": model.chosen}}
        chosen = model.card(layers)
        summary["layers"] = chosen.model_dump()
    calibration = calibrate_oof(cv.oof, labels)
    trust = fit_novelty(read, meta, y, calibrated_oof(cv.oof, labels, calibration), feasible.plan, params.seed,
                        params.trust, classifiers.takes_audio(params.classifier))
    cv.oof["novelty"] = trust.oof_scores
    summary["novelty"] = trust.summary
    summary["calibration"] = {k: calibration[k] for k in ("method", "reason", "temperature", "ece_before", "ece_after",
                                                           "nll_before", "nll_after", "candidate", "n", "protocol",
                                                           "fold_temperatures")}
    durations = list(durations)
    card = model_card.ModelCard(
        classifier=params.classifier, labels=labels, dim=int(read.shape[-1]), identity=identity,
        feature_params=feature_params, params=final_params, tuned=cfg.enabled,
        windows=model_card.Windows(max_clip_seconds=training_window(durations),
                                   median_clip_seconds=training_window(durations, 0.5)),
        calibration=model_card.Calibration(**calibration),
        novelty=model_card.NoveltyCard(**{k: trust.summary[k] for k in model_card.NoveltyCard.model_fields
                                          if k in trust.summary}),
        trained_on=model_card.TrainingContext(dataset=params.dataset, rows=len(X),
                                              clips=int((meta["aug"] == 0).sum()), protocol=summary["protocol"]),
        layer_choice=chosen)
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    layer_choice.save(model, model_dir, params.classifier)
    trust.novelty.save(model_dir)
    model_card.write(model_dir, card)
    return Trained(cv.oof, summary, learning_curves(histories))
