"""The three classifiers: one scikit-learn interface, learn speaker-independently, balance classes,
save/load without pickles and predict identically, deterministic for a seed."""

import numpy as np
import pytest
from embedding_fixtures import make_embeddings
from sklearn.base import clone
from sklearn.metrics import balanced_accuracy_score, recall_score

from ser.config import Params
from ser.models import classifiers
from ser.models.classifiers.svm import RbfSVC

NAMES = ["svm", "mlp", "xgboost"]


def build(name: str, seed: int = 0, **group):
    params = Params.model_validate({"classifier": name, name: group})
    return classifiers.get(name).build(params, seed)


def speaker_split(meta, held_out: int = 3):
    """Train on all rows of the first speakers, test on the originals of the last ``held_out``."""
    speakers = sorted(meta["speaker"].unique())
    test_speakers = meta["speaker"].isin(speakers[-held_out:]).to_numpy()
    return np.flatnonzero(~test_speakers), np.flatnonzero(test_speakers & (meta["aug"] == 0).to_numpy())


@pytest.fixture(scope="module")
def data():
    X, meta = make_embeddings(clips=240, dim=32, speakers=12, classes=4, copies=1, separation=1.5, seed=0)
    y = meta["label"].str.removeprefix("class").astype(int).to_numpy()
    return X, y, meta


@pytest.fixture(scope="module")
def fitted(data):
    X, y, meta = data
    train, _ = speaker_split(meta)
    return {name: classifiers.fit(build(name), X[train], y[train], meta.iloc[train]) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_beats_chance_on_unseen_speakers(data, fitted, name):
    X, y, meta = data
    _, test = speaker_split(meta)
    model = fitted[name]
    assert balanced_accuracy_score(y[test], model.predict(X[test])) > 0.6  # chance: 0.25
    proba = model.predict_proba(X[test])
    assert proba.shape == (len(test), 4)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    assert list(model.classes_) == [0, 1, 2, 3]
    clone(model)  # a proper scikit-learn estimator: params round-trip through get_params


@pytest.mark.parametrize("name", NAMES)
def test_save_load_predicts_identically_without_pickles(data, fitted, name, tmp_path):
    X, _, _ = data
    module = classifiers.get(name)
    module.save(fitted[name], tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert not any(f.endswith((".pkl", ".pickle", ".pt", ".pth", ".joblib")) for f in files), files
    loaded = module.load(tmp_path)
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted[name].predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), fitted[name].predict(X))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_the_same_model(data, fitted, name):
    X, y, meta = data
    train, test = speaker_split(meta)
    again = classifiers.fit(build(name), X[train], y[train], meta.iloc[train])
    np.testing.assert_array_equal(again.predict_proba(X[test]), fitted[name].predict_proba(X[test]))


@pytest.mark.parametrize("name", NAMES)
def test_balanced_class_weights_raise_minority_recall(name):
    """9:1 imbalance, overlapping classes: balancing shifts probability mass to the minority class
    and recovers more of it on unseen speakers."""
    X, meta = make_embeddings(clips=1000, dim=8, speakers=10, classes=2, separation=0.5, speaker_shift=0.3,
                              weights=[9, 1], seed=2)
    y = meta["label"].str.removeprefix("class").astype(int).to_numpy()
    train, test = speaker_split(meta, held_out=5)
    recall, minority_mass = {}, {}
    for weighting in ("balanced", None):
        model = build(name)
        model.set_params(**{f"{model.steps[-1][0]}__class_weight": weighting})
        classifiers.fit(model, X[train], y[train], meta.iloc[train])
        recall[weighting] = recall_score(y[test], model.predict(X[test]), pos_label=1)
        minority_mass[weighting] = model.predict_proba(X[test])[:, 1].mean()
    assert recall["balanced"] > recall[None] + 0.1, recall
    assert minority_mass["balanced"] > 1.25 * minority_mass[None], minority_mass


def test_mlp_early_stopping_validates_on_held_out_speakers_and_restores_the_best_epoch(data):
    X, y, meta = data
    model = classifiers.fit(build("mlp", max_epochs=60, patience=5), X, y, meta)  # speakers routed as mlp__groups
    mlp = model[-1]
    trained, validated = meta.iloc[mlp.train_rows_], meta.iloc[mlp.validation_rows_]
    assert len(validated) > 0 and set(trained["speaker"]).isdisjoint(validated["speaker"])
    assert set(trained["clip_id"]).isdisjoint(validated["clip_id"])  # no copy of a validation clip trained on
    assert (validated["aug"] == 0).all()

    history = mlp.history_
    assert [h["epoch"] for h in history] == list(range(1, len(history) + 1))
    assert {"train_loss", "val_loss", "val_uar"} <= set(history[0])
    best = max(history, key=lambda h: (h["val_uar"], -h["val_loss"]))
    assert mlp.best_epoch_ == best["epoch"]
    assert len(history) == 60 or len(history) == mlp.best_epoch_ + 5  # stopped after `patience` epochs
    rows = mlp.validation_rows_
    assert balanced_accuracy_score(y[rows], model.predict(X[rows])) == pytest.approx(best["val_uar"])


def test_the_mlp_fits_the_same_on_machines_with_more_cores(data, monkeypatch):
    """Its CPU thread count does not follow the core count: a fit on a 4-core machine equals one on 2 cores."""
    from ser.models.classifiers import devices

    X, y, meta = data
    fits = []
    for cores in (2, 4):
        monkeypatch.setattr(devices, "cpu_cores", lambda cores=cores: cores)
        fits.append(classifiers.fit(build("mlp", max_epochs=10, patience=10), X, y, meta).predict_proba(X))
    np.testing.assert_array_equal(*fits)


def test_mlp_without_speakers_holds_out_whole_clips(data):
    X, y, meta = data
    model = build("mlp", max_epochs=3)
    model.fit(X, y, mlp__clip_ids=meta["clip_id"].to_numpy(), mlp__aug=meta["aug"].to_numpy())
    mlp = model[-1]
    clips = meta["clip_id"].to_numpy()
    assert set(clips[mlp.train_rows_]).isdisjoint(clips[mlp.validation_rows_])


def test_svm_precomputed_kernel_is_the_same_model_as_libsvm_kernel(data):
    X, y, meta = data
    train, test = speaker_split(meta)
    groups = meta["speaker"].to_numpy()[train]
    fast = RbfSVC().fit(X[train], y[train], groups=groups)
    plain = RbfSVC(precompute_max_rows=0).fit(X[train], y[train], groups=groups)
    assert fast.precomputed_ and not plain.precomputed_
    assert len(fast.support_vectors_) == plain.svc_.n_support_.sum()
    np.testing.assert_allclose(fast.predict_proba(X[test]), plain.predict_proba(X[test]), atol=1e-3)


def test_svm_calibration_scores_original_clips_only_and_keeps_the_svc_decision():
    """Two speakers, plain folds by clip, classes the SVC separates perfectly: the calibrated argmax
    must not lose what the SVC's own decision gets right (it once scored 0.857 against 1.000)."""
    from embedding_fixtures import make_embeddings

    X, meta = make_embeddings(clips=160, speakers=2, classes=4, copies=2, separation=8.0, speaker_shift=0.2, seed=5)
    y = meta["label"].str.removeprefix("class").astype(int).to_numpy()
    original = meta["aug"].to_numpy() == 0
    train = original & (np.arange(len(y)) % 160 < 120) | (~original & (np.arange(len(y)) % 160 < 120))
    test = original & ~train
    model = classifiers.fit(build("svm"), X[train], y[train], meta[train], group_by="none")
    svm = model[-1]
    assert svm.fit_facts_["calibration_split"] == "3 folds by clips"
    decision = svm.decision_function(model[0].transform(X[test])).argmax(1)  # the SVC's own decision
    assert (decision == y[test]).mean() == 1.0
    assert (model.predict(X[test]) == y[test]).mean() >= 0.97
