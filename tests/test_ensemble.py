"""classifier: ensemble: weights fit on inner out-of-fold predictions, fixed weights, saving, config checks."""

import numpy as np
import pytest
from embedding_fixtures import make_embeddings

from ser.config import Params
from ser.models import classifiers
from ser.models.classifiers.ensemble import mixture_weights

FAST = {"mlp": {"max_epochs": 5, "hidden": [32, 16]}, "xgboost": {"n_estimators": 20}}


def test_mixture_weights_favour_the_member_that_knows():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    good = np.full((300, 3), 0.05)
    good[np.arange(300), y] = 0.9
    noise = rng.dirichlet(np.ones(3), 300)
    w = mixture_weights(np.stack([noise, good]), y)
    assert w.sum() == pytest.approx(1.0) and w[1] > 0.9, w


def fit_ensemble(weights, copies=1):
    X, meta = make_embeddings(clips=160, dim=16, speakers=8, classes=3, copies=copies, separation=2.0)
    labels = sorted(meta["label"].unique())
    y = meta["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    params = Params(classifier="ensemble", ensemble={"members": ["svm", "xgboost"], "weights": weights}, **FAST)
    model = classifiers.fit(classifiers.get("ensemble").build(params, 0), X, y, meta)
    return model, X, y, meta, params


def test_weights_are_fit_inside_the_training_rows_by_speaker_and_the_model_round_trips(tmp_path):
    model, X, y, meta, _ = fit_ensemble("fit")
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-6)
    assert (model.predict(X) == y).mean() > 0.8
    facts = model.fit_facts_
    assert set(facts["ensemble_weights"]) == {"svm", "xgboost"} and "folds by speakers" in facts["ensemble_weighting"]
    assert sum(facts["ensemble_weights"].values()) == pytest.approx(1.0, abs=1e-3)
    module = classifiers.get("ensemble")
    module.save(model, tmp_path)
    back = module.load(tmp_path)
    np.testing.assert_allclose(back.predict_proba(X), proba, atol=1e-6)


def test_fixed_weights_one_and_zero_give_that_member_alone():
    model, X, y, meta, params = fit_ensemble([1.0, 0.0])
    alone = classifiers.fit(classifiers.get("svm").build(params, 0), X, y, meta)
    np.testing.assert_allclose(model.predict_proba(X), alone.predict_proba(X), atol=1e-9)
    assert model.fit_facts_["ensemble_weighting"] == "fixed (ensemble.weights)"


@pytest.mark.parametrize("group, message", [
    ({"members": ["svm"]}, "at least 2"),
    ({"members": ["svm", "attentive"]}, "two or more distinct of svm, mlp, xgboost"),
    ({"members": ["svm", "svm"]}, "two or more distinct"),
    ({"weights": [1.0, 2.0]}, "one weight >= 0 per member"),
])
def test_bad_ensemble_settings_are_refused(group, message):
    with pytest.raises(ValueError, match=message):
        Params(classifier="ensemble", ensemble=group)


def test_an_ensemble_is_not_tuned_as_a_whole():
    with pytest.raises(ValueError, match="tune each member"):
        Params(classifier="ensemble", tune={"enabled": True})
