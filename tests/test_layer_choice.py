"""Encoder layers chosen inside each training fold (ser.models.layer_choice): what is chosen, that the test
fold never takes part, what cv.json and the model card say, and that predict reads the chosen layers only."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from embedding_fixtures import make_embeddings

from ser.config import Params
from ser.errors import ConfigError
from ser.models import classifiers, layer_choice
from ser.models.cv import outer_folds, plan
from ser.models.layer_choice import LayerChoice, candidates
from ser.models.select_params import SelectParams
from ser.models.train import train

WIDTH = 16


def layered(informative: dict[int, float], layers: int = 5, clips: int = 240, copies: int = 0, seed: int = 0
            ) -> tuple[np.ndarray, pd.DataFrame]:
    """Blocks of WIDTH columns, one per layer, of unit noise: layer i adds class means ``informative[i]`` apart
    (the others carry no class information); the clips, speakers and copies of ``make_embeddings``."""
    _, meta = make_embeddings(clips=clips, dim=WIDTH, speakers=12, classes=4, copies=copies, seed=seed)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((len(meta), WIDTH * layers)).astype(np.float32)
    means = rng.standard_normal((4, WIDTH))
    label = codes(meta)
    for layer, strength in informative.items():
        X[:, layer * WIDTH:(layer + 1) * WIDTH] += strength * means[label]
    return X, meta


def codes(meta: pd.DataFrame) -> np.ndarray:
    return pd.factorize(meta["label"], sort=True)[0]


def fitted(X, meta, top: int, candidates_: list[int] | None = None, layers: int = 5, grid: dict | None = None
           ) -> LayerChoice:
    params = Params(classifier="svm")
    model = LayerChoice(classifiers.get("svm").build(params, 0), list(range(layers)), candidates_, top=top, grid=grid)
    return classifiers.fit(model, X, codes(meta), meta)


def test_the_informative_layers_are_chosen_best_first():
    X, meta = layered({3: 2.0, 1: 0.6})
    model = fitted(X, meta, top=2)
    assert model.chosen == [3, 1]
    uar = model.inner_uar_
    assert set(uar) == {0, 1, 2, 3, 4} and uar[3] > uar[1] > max(uar[0], uar[2], uar[4])
    facts = model.fit_facts_
    assert facts["layers_chosen"] == [3, 1] and "best 2 of 5 layers" in facts["layer_choice"]
    assert "3 folds by speakers" in facts["layer_choice"] and facts["calibration_split"]  # the best member's facts
    assert (model.predict(X) == codes(meta)).mean() > 0.9


def test_fewer_candidates_than_top_are_all_used_without_inner_cv():
    X, meta = layered({2: 2.0})
    model = fitted(X, meta, top=4, candidates_=[2, 4])
    assert model.chosen == [2, 4] and model.inner_uar_ == {}
    assert "no inner CV needed" in model.fit_facts_["layer_choice"]


def test_the_ranking_is_fit_on_original_clips_and_the_members_on_every_row():
    X, meta = layered({3: 2.0}, copies=2)
    model = fitted(X, meta, top=1)
    assert "240 original clips" in model.fit_facts_["layer_choice"]
    assert model.members_[0][1][-1].support_.max() >= 240  # the final member was fit on the copies too


def test_a_grid_of_settings_is_tried_with_every_layer_and_the_best_kept():
    X, meta = layered({3: 1.0})
    model = fitted(X, meta, top=1, grid={"C": [1e-3, 10.0]})
    assert model.chosen == [3] and model.fit_facts_["layer_settings"] == {"3": {"C": 10.0}}
    assert model.members_[0][1][-1].C == 10.0  # C=0.001 cannot fit anything: never the better one
    assert "each with its best of 2 settings of select.grid" in model.fit_facts_["layer_choice"]


def test_narrowed_reads_only_the_chosen_blocks_and_predicts_the_same():
    X, meta = layered({3: 2.0, 0: 1.0})
    model = fitted(X, meta, top=2)
    narrow = model.narrowed()
    assert narrow.layers == model.chosen == [3, 0] and narrow.n_features_in_ == 2 * WIDTH
    view = model.view(X)
    np.testing.assert_array_equal(view[:, :WIDTH], X[:, 3 * WIDTH:4 * WIDTH])
    np.testing.assert_array_equal(narrow.predict_proba(view), model.predict_proba(X))


def test_save_and_load_round_trip(tmp_path):
    X, meta = layered({2: 2.0})
    model = fitted(X, meta, top=2).narrowed()
    layer_choice.save(model, tmp_path, "svm")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*(f"layer_{i}" for i in model.chosen), "layers.json"])
    loaded = layer_choice.load(tmp_path, "svm")
    narrow = _narrow_input(model, X)
    np.testing.assert_array_equal(loaded.predict_proba(narrow), model.predict_proba(narrow))
    assert loaded.chosen == model.chosen and loaded.fit_facts_ == json.loads(json.dumps(model.fit_facts_))


def _narrow_input(model: LayerChoice, X: np.ndarray) -> np.ndarray:
    """The vectors a narrowed model reads, cut from all five layers' blocks."""
    return np.concatenate([X[:, layer * WIDTH:(layer + 1) * WIDTH] for layer in model.chosen], 1)


def test_candidates_from_the_features_and_select_layers():
    blocks = {"layers": [0, 1, 2, 3, 4, 5, 6], "states": 7}
    assert candidates(blocks, SelectParams()) == [0, 1, 2, 3, 4, 5, 6]
    assert candidates(blocks, SelectParams(layers=[3])) == [3]
    assert candidates(blocks, SelectParams(layers=[-1, 2, 6])) == [6, 2]  # -1 is 6: listed once
    assert candidates(blocks, SelectParams(layers="concat")) is None
    assert candidates(None, SelectParams()) is None  # MFCC, eGeMAPS, one layer: nothing to choose
    with pytest.raises(ValueError, match=r"select.layers: \[9\] not among the extracted layers \[0, 1, 2, 3, 4, 5, 6"):
        candidates(blocks, SelectParams(layers=[9]))
    with pytest.raises(ValueError, match=r"select.layers: \[1\] not among the extracted layers \[3, 4\]"):
        candidates({"layers": [3, 4], "states": 7}, SelectParams(layers=[1]))


def test_tuning_and_a_layer_choice_together_are_refused_naming_the_fix(tmp_path):
    settings = {"features": {"extractor": "whisper"}, "tune": {"enabled": True}}
    with pytest.raises(ValueError, match=r"select.layers: \[3\]"):
        Params.model_validate(settings)
    Params.model_validate({**settings, "select": {"layers": [3]}})  # one layer: tuning searches on it
    Params.model_validate({**settings, "features": {"extractor": "whisper", "layers": 3}})


def features_json(layers: int = 5) -> dict:
    return {"identity": {"extractor": "whisper", "layers": "all", "weights": "sha1:x"},
            "feature_params": {"features": {"extractor": "whisper", "layers": "all"}},
            "blocks": {"layers": list(range(layers)), "states": layers}}


def test_the_test_fold_never_takes_part_in_the_choice(tmp_path):
    """Layer 4 tells the classes apart perfectly on the clips of one fold's test speakers only (noise on every
    other clip): a choice that peeked at the test fold would pick it there. Chosen inside the training rows,
    no fold picks it, and its test clips score like the others."""
    X, meta = layered({1: 0.3})
    params = Params(classifier="svm", select={"top": 1})
    fold_of = outer_folds(meta, plan(meta["speaker"].to_numpy(), 5, "speaker"), 0)
    test = fold_of[2][1]
    y = codes(meta)
    X[test, 4 * WIDTH:5 * WIDTH] = 5.0 * np.eye(4, WIDTH)[y[test]]
    trained = train(X, meta, params, features_json(), tmp_path / "models", np.ones(len(X)))
    folds = trained.summary["folds"]
    assert [f["layers_chosen"] for f in folds] == [[1]] * 5
    assert set(folds[2]["layer_inner_uar"]) == {"0", "1", "2", "3", "4"}
    assert folds[2]["uar"] < 0.8, folds  # what layer 1 gives, not the perfect score layer 4 would


def test_cv_json_and_the_model_card_say_what_was_chosen(tmp_path):
    from ser.models import model_card

    X, meta = layered({3: 2.0, 2: 0.8})
    params = Params(classifier="svm", select={"top": 2})
    trained = train(X, meta, params, features_json(), tmp_path / "models", np.ones(len(X)))
    summary = trained.summary
    assert summary["layers"]["chosen"] == [3, 2] and summary["layers"]["candidates"] == [0, 1, 2, 3, 4]
    assert all(f["layers_chosen"][0] == 3 for f in summary["folds"]) and summary["final"]["layers_chosen"] == [3, 2]
    card = model_card.read(tmp_path / "models")
    assert card.layer_choice.chosen == [3, 2] and card.dim == 2 * WIDTH
    assert card.identity["layers"] == [3, 2] and card.feature_params["features"]["layers"] == [3, 2]
    assert set(card.layer_choice.inner_uar) == {"0", "1", "2", "3", "4"}
    with pytest.raises(ConfigError, match=r"select.layers: \[7\]"):
        train(X, meta, Params(classifier="svm", select={"layers": [7]}), features_json(), tmp_path / "m2",
              np.ones(len(X)))


def test_a_grid_must_name_settings_of_the_classifier():
    Params.model_validate({"select": {"grid": {"C": [1, 10]}}})
    Params.model_validate({"select": {"grid": {"C": [1, 10]}, "layers": [3]}})  # one layer, its C chosen in-fold
    with pytest.raises(ValueError, match=r"for one feature vector search the settings with tune.enabled"):
        Params.model_validate({"features": {"extractor": "mfcc"}, "select": {"grid": {"C": [1, 10]}}})
    with pytest.raises(ValueError, match=r"select.grid: \['c'\] must name settings of the classifier's group"):
        Params.model_validate({"select": {"grid": {"c": [1, 10]}}})
    with pytest.raises(ValueError, match=r"classifier is attentive"):
        Params.model_validate({"classifier": "attentive", "features": {"pooling": "none"},
                               "select": {"grid": {"lr": [1e-3]}}})
    with pytest.raises(ValueError, match=r"tune.enabled"):
        Params.model_validate({"tune": {"enabled": True}, "select": {"grid": {"C": [1, 10]}, "layers": [3]}})


def test_predict_extracts_only_the_chosen_layers_and_gets_their_vectors(tmp_path):
    """Trained on every layer of a tiny Whisper, the model folder names the chosen layer alone: predict runs the
    encoder for it and gets exactly the block training read."""
    from model_fixtures import tiny_whisper
    from trained_fixtures import train_models

    from ser.corpora import synthetic
    from ser.corpora.audio import load
    from ser.inference.predict import Predictor
    from ser.models import model_card

    encoder = tiny_whisper(tmp_path / "encoder")
    synthetic.generate(tmp_path / "corpus", speakers=6, clips=3, classes=["angry", "sad", "happy"], duration=1.0,
                       seed=0)
    clips = synthetic.scan(tmp_path / "corpus", Params())
    params = Params.model_validate({"dataset": "synthetic", "augment": {"n_augmentations": 0}, "select": {"top": 1},
                                    "features": {"extractor": "whisper", "model": str(encoder), "device": "cpu"}})
    trained, embedded = train_models(tmp_path, clips, params)
    card = model_card.read(tmp_path / "models")
    (layer,) = card.layer_choice.chosen
    assert card.layer_choice.candidates == [0, 1, 2] and set(card.layer_choice.inner_uar) == {"0", "1", "2"}
    assert card.feature_params["features"]["layers"] == [layer] and card.identity["layers"] == [layer]
    assert trained.summary["final"]["layers_chosen"] == [layer] and card.dim == 32
    predictor = Predictor.load(tmp_path / "models")
    paths = list(clips["path"][:4])
    vectors = predictor.extractor.transform([load(p, 16000) for p in paths])
    np.testing.assert_allclose(vectors, embedded.X[:4, layer * 32:(layer + 1) * 32], atol=1e-5)
    assert all(r.ok for r in predictor.predict(paths))


@pytest.mark.parametrize("classifier", ["mlp", "ensemble"])
def test_any_vector_classifier_is_chosen_per_layer_and_saved(classifier, tmp_path):
    """The MLP (its early stopping routed the rows' speakers) and the ensemble (members in sub-folders of each
    layer's folder) behind a layer choice; predict's loading gives the same probabilities."""
    X, meta = layered({2: 2.0}, clips=160)
    params = Params(classifier=classifier, mlp={"max_epochs": 5, "hidden": [16, 8]}, xgboost={"n_estimators": 10})
    model = LayerChoice(classifiers.get(classifier).build(params, 0), list(range(5)), top=2)
    model = classifiers.fit(model, X, codes(meta), meta).narrowed()
    assert model.chosen[0] == 2
    layer_choice.save(model, tmp_path, classifier)
    loaded = layer_choice.load(tmp_path, classifier)
    narrow = _narrow_input(model, X)
    np.testing.assert_allclose(loaded.predict_proba(narrow), model.predict_proba(narrow), atol=1e-6)
