"""Optuna tuning nested in CV: finishes, never sees the test fold, and its best params are the
ones the fitted models use."""

import os
import subprocess
import sys

import numpy as np
import optuna
import pytest
from embedding_fixtures import make_embeddings
from shared_paths import ROOT

from ser.artifacts import read_json, write_json, write_npz
from ser.config import Params, load_params
from ser.embeddings import read_embeddings
from ser.models import classifiers, tuning
from ser.models.train import train


def tuned_params(tmp_path, classifier="svm", **group):
    """Tuning on one feature vector per clip (MFCC-like embeddings: no encoder layers to choose among)."""
    return Params.model_validate({
        "classifier": classifier, classifier: group, "cv": {"folds": 3}, "features": {"extractor": "mfcc"},
        "tune": {"enabled": True, "n_trials": 3, "storage": f"sqlite:///{tmp_path}/optuna.db"}})


FEATURES = {"identity": {"extractor": "test"}, "feature_params": {}}  # features.json, as far as train reads it


@pytest.fixture(scope="module")
def data():
    return make_embeddings(clips=240, dim=16, speakers=12, classes=3, copies=1, separation=1.2, seed=1)


def test_tuning_finishes_and_the_final_model_uses_the_best_params(data, tmp_path):
    X, meta = data
    params = tuned_params(tmp_path)
    trained = train(X, meta, params, FEATURES, tmp_path / "models", [1.0])
    folds = trained.summary["folds"]
    assert [f["trials"] for f in folds] == [3, 3, 3]
    assert all({"C", "gamma"} == set(f["best_params"]) and 0 <= f["inner_uar"] <= 1 for f in folds)
    final = trained.summary["tuning"]["final"]
    svm = classifiers.get("svm").load(tmp_path / "models")[-1]
    assert svm.get_params()["C"] == final["best_params"]["C"]
    assert svm.get_params()["gamma"] == final["best_params"]["gamma"]
    assert read_json(tmp_path / "models/model.json")["params"]["C"] == final["best_params"]["C"]
    assert "optuna.db" in trained.summary["tuning"]["storage"]

    study = optuna.load_study(study_name=final["study"], storage=params.tune.storage)
    assert study.best_trial.value == final["inner_uar"]


def test_each_fold_is_tuned_on_its_training_speakers_only(data, tmp_path, monkeypatch):
    X, meta = data
    seen = {}
    real_tune = tuning.tune

    def spy(X_, y_, meta_, params_, name):
        seen[name.rsplit("-", 1)[1]] = set(meta_["speaker"])
        return real_tune(X_, y_, meta_, params_, name)

    monkeypatch.setattr(tuning, "tune", spy)
    trained = train(X, meta, tuned_params(tmp_path), FEATURES, tmp_path / "models", [1.0])
    for k in range(3):
        tested = set(trained.oof.loc[trained.oof["fold"] == k, "speaker"])
        assert seen[f"fold{k}"].isdisjoint(tested)
    assert seen["final"] == set(meta["speaker"])


def test_a_finished_study_is_resumed_not_rerun(data, tmp_path):
    X, meta = data
    params = tuned_params(tmp_path)
    y = meta["label"].str.removeprefix("class").astype(int).to_numpy()
    first = tuning.tune(X, y, meta, params, "resume-test")
    again = tuning.tune(X, y, meta, params, "resume-test")
    assert again.n_trials == first.n_trials == 3
    assert again.best_params == first.best_params


class EveryOtherTrial(optuna.pruners.BasePruner):
    """Prunes odd-numbered trials once they reported epoch 3: pruning happens, whatever the scores."""

    def prune(self, study, trial):
        return trial.number % 2 == 1 and trial.last_step is not None and trial.last_step >= 3


def test_mlp_trials_report_validation_uar_per_epoch_and_are_pruned(data, tmp_path, monkeypatch):
    """The MLP objective reports every epoch and a pruner's verdict stops the trial (PRUNED, counted as
    finished). The study's own MedianPruner waits for 5 trials and 10 epochs, which a small test cannot
    afford to reach reliably, so a pruner that always prunes odd trials is put in its place."""
    X, meta = data
    built = []

    def pruner(**kwargs):
        built.append(kwargs)
        return EveryOtherTrial()

    monkeypatch.setattr(optuna.pruners, "MedianPruner", pruner)
    params = tuned_params(tmp_path, "mlp", max_epochs=8, patience=8)
    params = params.model_copy(update={"tune": params.tune.model_copy(update={"n_trials": 4})})
    y = meta["label"].str.removeprefix("class").astype(int).to_numpy()
    result = tuning.tune(X, y, meta, params, "mlp-test")
    assert built[-1] == {"n_startup_trials": 5, "n_warmup_steps": 10}  # what tune.n_trials must exceed to prune
    study = optuna.load_study(study_name="mlp-test", storage=params.tune.storage)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED] * 2
    steps = [len(t.intermediate_values) for t in study.trials]
    assert steps[0] == steps[2] == 8 and steps[1] == steps[3] < 8, steps  # pruned trials stopped early
    assert result.n_trials == 4  # pruned trials count as finished: no trial beyond tune.n_trials
    assert 2 <= len(result.best_params["hidden"]) <= 5


@pytest.mark.parametrize("classifier", ["svm", "mlp", "xgboost"])
def test_every_point_of_the_search_spaces_is_a_valid_params_group(classifier):
    params = Params(classifier=classifier)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        overrides = classifiers.get(classifier).space(study.ask())
        group = getattr(tuning.with_overrides(params, overrides), classifier)
        assert {k: getattr(group, k) for k in overrides} == overrides


def test_study_names_change_with_the_data_and_the_settings(data, monkeypatch):
    X, meta = data
    params = Params(classifier="svm")
    base = tuning.fingerprint(X, meta, params)
    assert tuning.fingerprint(X, meta, params) == base
    assert tuning.fingerprint(X + np.float32(1), meta, params) != base
    assert tuning.fingerprint(X, meta, Params(classifier="svm", seed=1)) != base
    assert tuning.fingerprint(X, meta, Params(classifier="xgboost")) != base
    assert tuning.fingerprint(X, meta, Params(classifier="svm", select={"layers": [1]})) != base  # another layer
    monkeypatch.setattr(classifiers.get("svm"), "SPACE_VERSION", 2)  # a changed search space
    assert tuning.fingerprint(X, meta, params) != base


def test_storage_passwords_stay_out_of_results():
    label = tuning.storage_label("postgresql://ser:secret@db.example.org:5432/optuna")
    assert "secret" not in label and "db.example.org" in label


@pytest.mark.timeout(300)
def test_the_worker_fills_the_studies_that_train_then_reads(data, tmp_path, monkeypatch):
    """``python -m ser.models.tuning`` in a folder with params.yaml and embeddings/features.npz runs every
    study the train stage will use (each fold, then final) to tune.n_trials; train then only reads them.
    The features hold two encoder layers' blocks and select.layers fixes the second: both tune on it."""
    X, meta = data
    features = {**FEATURES, "blocks": {"layers": [0, 1], "states": 2}}
    write_npz(tmp_path / "embeddings/features.npz", X=X, aug=meta["aug"].to_numpy(),
              **{c: meta[c].to_numpy(str) for c in ("clip_id", "label", "speaker")})
    write_json(tmp_path / "embeddings/features.json", features)
    (tmp_path / "data").mkdir()
    meta[meta["aug"] == 0][["clip_id", "label", "speaker"]].to_csv(tmp_path / "data/manifest.csv", index=False)
    (tmp_path / "params.yaml").write_text(
        f"classifier: svm\nselect:\n  layers: [1]\ncv:\n  folds: 3\ntune:\n  enabled: true\n  n_trials: 3\n"
        f"  storage: sqlite:///{tmp_path}/optuna.db\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "ser.models.tuning"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]

    monkeypatch.chdir(tmp_path)
    params = load_params()
    X_read, meta_read = read_embeddings()
    fp = tuning.fingerprint(X_read, meta_read, params)
    names = [tuning.study_name(params, fp, part) for part in ("fold0", "fold1", "fold2", "final")]
    for name in names:
        study = optuna.load_study(study_name=name, storage=params.tune.storage)
        assert len(study.get_trials(states=tuning.FINISHED)) == 3, name

    def no_new_trials(*args, **kwargs):
        raise AssertionError("train ran trials although the worker had finished the study")

    monkeypatch.setattr(optuna.Study, "optimize", no_new_trials)
    seen = []
    original_tune = tuning.tune
    monkeypatch.setattr(tuning, "tune", lambda X, *a, **k: (seen.append(X.shape[1]), original_tune(X, *a, **k))[1])
    trained = train(X_read, meta_read, params, features, tmp_path / "models", [1.0])
    assert set(seen) == {8}, seen  # train tuned on layer 1's block (8 of the 16 columns), as the worker did
    assert [f["study"] for f in trained.summary["folds"]] + [trained.summary["tuning"]["final"]["study"]] == names
    assert [f["trials"] for f in trained.summary["folds"]] == [3, 3, 3]
