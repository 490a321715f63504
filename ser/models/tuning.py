"""Optuna search over the chosen classifier's params group, nested inside cross-validation.

Each outer fold gets its own study, run on that fold's training rows only: a trial fits on part of
the training speakers and is scored by UAR on the rest (``tune.validation_fraction`` of them,
original clips only), so the outer test fold never influences the choice. The final model is tuned
the same way on all data. The search space is the classifier module's ``space``. A classifier
whose fit takes an ``epoch_callback`` (the MLP) reports its early-stopping validation UAR after
every epoch, and a MedianPruner stops unpromising trials.

Studies live in ``tune.storage`` (SQLite by default; any Optuna RDB URL) under names that include a
fingerprint of the data and the settings, so a study is resumed, or shared by several machines,
only when it is the same search. A study is done when it holds ``tune.n_trials`` finished trials,
whoever ran them: a re-run with a complete study just reads the best trial.

``python -m ser.models.tuning`` is a worker: it adds trials to every study the train stage will use
(for params.yaml and embeddings/features.npz of the current folder) without fitting anything else.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # a worker process, as stages/train.py
    # OpenMP threads (XGBoost, scikit-learn) sleep at barriers instead of spinning: 2% slower on an idle
    # machine, far faster on a busy one (docs/benchmarks.md). Read when libgomp loads, so before any import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState
from sklearn.metrics import balanced_accuracy_score

from ser.config import Params
from ser.embeddings import FrameSet
from ser.models import classifiers, feasibility
from ser.models.cv import outer_folds
from ser.models.inner_splits import validation_split

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def with_overrides(params: Params, overrides: dict) -> Params:
    """``params`` with the classifier's group updated (and validated) by ``overrides``."""
    group = getattr(params, params.classifier)
    updated = type(group).model_validate({**group.model_dump(), **overrides})
    return params.model_copy(update={params.classifier: updated})


# --- studies ------------------------------------------------------------------------------------

@dataclass
class TuneResult:
    study_name: str
    best_params: dict  # overrides of the classifier's params group
    best_value: float  # UAR on the inner validation speakers
    n_trials: int  # finished trials in the study
    split: str = "speakers"  # what the objective's validation split held out


def fingerprint(X: np.ndarray, meta: pd.DataFrame, params: Params) -> str:
    """Short hash of the data and of every setting a trial's score depends on."""
    h = hashlib.blake2b(digest_size=6)
    h.update(X.fingerprint().encode() if isinstance(X, FrameSet) else np.ascontiguousarray(X).view(np.uint8).data)
    for column in ("clip_id", "label", "speaker", "aug"):
        h.update("\0".join(map(str, meta[column])).encode())
    space_version = classifiers.get(params.classifier).SPACE_VERSION
    h.update(json.dumps({"space": space_version, "seed": params.seed, "classifier": params.classifier,
                         "group": getattr(params, params.classifier).model_dump(), "cv": params.cv.model_dump(),
                         "select": params.select.model_dump(),  # which layer's vectors the trials fit
                         "inner": params.tune.validation_fraction}, sort_keys=True).encode())
    return h.hexdigest()


def study_name(params: Params, data_fingerprint: str, part: str) -> str:
    """e.g. ``ser-mlp-3fa2c0d91b7e-fold0`` / ``...-final``."""
    return f"{params.tune.study_name}-{params.classifier}-{data_fingerprint}-{part}"


def storage_label(url: str) -> str:
    """The storage URL without its password, for logs and results."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def open_study(params: Params, name: str, seeded: bool = True) -> optuna.Study:
    """Create or resume a study (SQLite: its folder is created). The TPE sampler is seeded by
    ``seed`` plus the trials already finished, so a resumed study does not replay its first random
    trials; unseeded (``seeded=False``, the workers) so that machines joining at once differ."""
    url = params.tune.storage
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    done = _finished(optuna.create_study(study_name=name, storage=url, direction="maximize", load_if_exists=True))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=10)  # trials that report epochs
    sampler = optuna.samplers.TPESampler(seed=params.seed + done if seeded else None)
    return optuna.load_study(study_name=name, storage=url, sampler=sampler, pruner=pruner)


def tune(X: np.ndarray, y: np.ndarray, meta: pd.DataFrame, params: Params, name: str,
         seeded: bool = True) -> TuneResult:
    """Search the classifier's params on these (training) rows until the study has ``tune.n_trials``
    finished trials; return the best trial's overrides."""
    module = classifiers.get(params.classifier)
    speakers = meta["speaker"].to_numpy() if params.cv.group_by != "none" else None
    fit_rows, val_rows, units = validation_split(y, speakers, meta["clip_id"].to_numpy(), meta["aug"].to_numpy(),
                                                 params.tune.validation_fraction, params.seed)

    def objective(trial: optuna.Trial) -> float:
        model = module.build(with_overrides(params, module.space(trial)), params.seed)
        classifiers.fit(model, X[fit_rows], y[fit_rows], meta.iloc[fit_rows], params.cv.group_by,
                        epoch_callback=_pruning(trial))
        return float(balanced_accuracy_score(y[val_rows], model.predict(X[val_rows])))

    study = open_study(params, name, seeded)
    cfg = params.tune
    todo = cfg.n_trials - _finished(study)
    log.info("tuning %s in study %s (%s): %d rows, %d speakers fit / %d clips, %d speakers scored; "
             "%d of %d trials to run", params.classifier, name, storage_label(cfg.storage), len(fit_rows),
             meta["speaker"].iloc[fit_rows].nunique(), len(val_rows), meta["speaker"].iloc[val_rows].nunique(),
             max(todo, 0), cfg.n_trials)
    if todo > 0:
        study.optimize(objective, n_trials=todo, timeout=cfg.timeout, n_jobs=cfg.n_jobs, gc_after_trial=True,
                       callbacks=[MaxTrialsCallback(cfg.n_trials, states=FINISHED)])
    best = study.best_trial
    result = TuneResult(name, module.space(optuna.trial.FixedTrial(best.params)), float(best.value), _finished(study),
                        units)
    log.info("tuning %s: best inner UAR %.3f (trial %d of %d) with %s", name, result.best_value, best.number,
             result.n_trials, result.best_params)
    return result


def _finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def _pruning(trial: optuna.Trial) -> Callable[[int, float], None]:
    """Epoch callback (the MLP's): report the validation UAR, stop the trial if the pruner says so."""
    def report(epoch: int, val_uar: float) -> None:
        trial.report(val_uar, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} (validation UAR {val_uar:.3f})")
    return report


def main() -> None:
    """Worker: add trials to all studies of the current params.yaml and embeddings (folds, then final)."""
    from ser.artifacts import read_json, read_table
    from ser.config import load_params
    from ser.embeddings import read_embeddings, with_manifest
    from ser.models.layer_choice import tuned_on

    params = load_params()
    X, meta = read_embeddings("embeddings/features.npz")
    meta = with_manifest(meta, read_table("data/manifest.csv"))  # its corpus column, as train reads it
    labels = sorted(meta["label"].unique())
    y = meta["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    fp = fingerprint(X, meta, params)
    X = tuned_on(X, read_json("embeddings/features.json").get("blocks"), params.select)  # the rows train tunes on
    cv_plan = feasibility.check(meta[meta["aug"] == 0], params.cv, params.seed).plan
    parts = [(f"fold{k}", train) for k, (train, _) in enumerate(outer_folds(meta, cv_plan, params.seed))]
    for part, rows in [*parts, ("final", np.arange(len(X)))]:
        tune(X[rows], y[rows], meta.iloc[rows].reset_index(drop=True), params, study_name(params, fp, part),
             seeded=False)


if __name__ == "__main__":
    from ser.stage import run_stage

    run_stage(main)
