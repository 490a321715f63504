"""Optuna tuning nested in CV: finishes, never sees the test fold, and its best params are the
ones the fitted models use."""

import numpy as np
import optuna
import pytest
from embedding_fixtures import make_embeddings

from ser import classifiers, tuning
from ser.config import Params
from ser.io import read_json
from ser.train import train


def tuned_params(tmp_path, classifier="svm", **group):
    return Params.model_validate({
        "classifier": classifier, classifier: group, "cv": {"folds": 3},
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


def test_mlp_trials_report_validation_uar_per_epoch_for_pruning(data, tmp_path):
    X, meta = data
    params = tuned_params(tmp_path, "mlp", max_epochs=8, patience=3)
    y = meta["label"].str.removeprefix("class").astype(int).to_numpy()
    result = tuning.tune(X, y, meta, params, "mlp-test")
    study = optuna.load_study(study_name="mlp-test", storage=params.tune.storage)
    assert isinstance(study.pruner, optuna.pruners.MedianPruner)
    assert all(len(t.intermediate_values) >= 4 for t in study.trials)  # patience 3: at least 4 epochs
    assert 2 <= len(result.best_params["hidden"]) <= 5


@pytest.mark.parametrize("classifier", ["svm", "mlp", "xgboost"])
def test_every_point_of_the_search_spaces_is_a_valid_params_group(classifier):
    params = Params(classifier=classifier)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        overrides = tuning.SPACES[classifier](study.ask())
        group = getattr(tuning.with_overrides(params, overrides), classifier)
        assert {k: getattr(group, k) for k in overrides} == overrides


def test_study_names_change_with_the_data_and_the_settings(data):
    X, meta = data
    params = Params(classifier="svm")
    base = tuning.fingerprint(X, meta, params)
    assert tuning.fingerprint(X, meta, params) == base
    assert tuning.fingerprint(X + np.float32(1), meta, params) != base
    assert tuning.fingerprint(X, meta, Params(classifier="svm", seed=1)) != base
    assert tuning.fingerprint(X, meta, Params(classifier="xgboost")) != base


def test_storage_passwords_stay_out_of_results():
    label = tuning.storage_label("postgresql://ser:secret@db.example.org:5432/optuna")
    assert "secret" not in label and "db.example.org" in label
