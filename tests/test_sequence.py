"""Frame-level features and the sequence classifiers: storage, padding invariance, the recipe, saving."""

import numpy as np
import pandas as pd
import pytest
import torch
from trained_fixtures import train_models

from ser.artifacts import write_npz
from ser.config import Params
from ser.corpora import synthetic
from ser.embeddings import FrameFile, FrameSet, as_rows, read_embeddings, write_frames
from ser.inference.predict import Predictor
from ser.models import classifiers
from ser.models.classifiers.sequence_inputs import spec_augment
from ser.models.classifiers.torch_training import warmup_cosine

SHORT = {"max_epochs": 4, "patience": 4, "batch_size": 16, "min_steps": 0, "device": "cpu"}


def frame_data(clips: int = 96, layers: int = 3, dim: int = 12, speakers: int = 8, seed: int = 0):
    """Clips of 20-60 frames whose class shifts a few dims of one layer (the others are noise)."""
    rng = np.random.default_rng(seed)
    y = np.arange(clips) % 3
    seqs = []
    for label in y:
        x = rng.standard_normal((int(rng.integers(20, 60)), layers, dim)).astype(np.float32)
        x[:, 1, label * 3:(label + 1) * 3] += 1.5
        seqs.append(x)
    meta = pd.DataFrame({"clip_id": [f"c{i}" for i in range(clips)], "label": y.astype(str),
                         "speaker": [f"s{i % speakers}" for i in range(clips)], "aug": 0})
    return FrameSet.from_list([s.astype(np.float16) for s in seqs]), y, meta  # float16, as extractors give


def fitted(kind: str, seed: int = 0, **settings):
    X, y, meta = frame_data()
    params = Params(classifier=kind, seed=seed, features={"pooling": "none", "extractor": "mfcc"},
                    **{kind: {**SHORT, **settings}})
    model = classifiers.fit(classifiers.get(kind).build(params, seed), X, y, meta)
    return model, X, y


def test_frames_round_trip_read_from_disk(tmp_path):
    X, _, meta = frame_data(clips=10)
    write_frames(tmp_path / "frames.npy", (X.clip(i) for i in range(len(X))), int(X.lengths.sum()), X.shape[1:])
    write_npz(tmp_path / "features.npz", offsets=X.offsets, clip_id=meta["clip_id"].to_numpy(str),
              label=meta["label"].to_numpy(str), speaker=meta["speaker"].to_numpy(str), aug=meta["aug"].to_numpy())
    back, meta_back = read_embeddings(tmp_path / "features.npz")
    assert isinstance(back.frames, FrameFile) and back.shape == X.shape
    assert np.array_equal(np.load(tmp_path / "frames.npy"), X.frames)  # a plain .npy
    assert np.array_equal(back.clip(7), X.clip(7)) and list(meta_back["clip_id"]) == list(meta["clip_id"])
    sub = back[np.array([3, 1])]
    assert np.array_equal(sub.lengths, X.lengths[[3, 1]]) and np.array_equal(sub.clip(1), X.clip(1))
    assert sub.fingerprint() != back[np.array([1, 3])].fingerprint()
    with pytest.raises(ValueError, match="expected"):
        write_frames(tmp_path / "bad.npy", [X.clip(0)], 999, X.shape[1:])
    assert not (tmp_path / "bad.npy").exists()


def test_batch_pads_with_zeros_and_crops():
    X, _, _ = frame_data(clips=4)
    x, lengths = X.batch([0, 1])
    assert x.shape[1] == lengths.max() and (x[0, lengths[0]:] == 0).all()
    x, lengths = X.batch([0, 1], max_frames=10, rng=np.random.default_rng(0))
    assert x.shape[1] == 10 and (lengths == 10).all()
    centre, _ = X.batch([0], max_frames=10)
    start = (X.lengths[0] - 10) // 2
    assert np.array_equal(centre[0], X.clip(0)[start:start + 10])
    mean, std = X.moments()
    every = np.concatenate([X.clip(i) for i in range(len(X))])
    assert np.allclose(mean, every.mean(0), atol=1e-5) and np.allclose(std, every.std(0), atol=1e-4)
    assert isinstance(as_rows([X.clip(0), X.clip(1)]), FrameSet) and as_rows([np.zeros(3), np.ones(3)]).shape == (2, 3)


@pytest.mark.parametrize("kind", ["attentive", "cnn_bilstm"])
def test_padding_never_changes_a_prediction(kind):
    model, X, _ = fitted(kind)
    short, long = int(np.argmin(X.lengths)), int(np.argmax(X.lengths))
    alone = model.predict_proba(X[np.array([short])])
    padded = model.predict_proba(X[np.array([long, short])])[1]  # padded to the long clip's length
    assert np.allclose(alone[0], padded, atol=1e-5), (alone[0], padded)


@pytest.mark.parametrize("kind", ["attentive", "cnn_bilstm"])
def test_learns_reproducibly_and_saves_without_pickle(kind, tmp_path):
    model, X, y = fitted(kind, max_epochs=15, patience=15, mixup_p=0.0, validation_fraction=0.15)
    step = classifiers.final_step(model)
    assert (model.predict(X) == y).mean() > 0.6  # 3 classes: chance is 1/3
    assert [r["epoch"] for r in step.history_] == list(range(1, len(step.history_) + 1))
    assert "speakers" in step.fit_facts_["early_stopping"]
    weights = step.fit_facts_["layer_weights"]
    assert len(weights) == 3 and abs(sum(weights) - 1) < 1e-3
    again, _, _ = fitted(kind, max_epochs=15, patience=15, mixup_p=0.0, validation_fraction=0.15)
    assert np.allclose(model.predict_proba(X), again.predict_proba(X), atol=1e-6)
    module = classifiers.get(kind)
    module.save(model, tmp_path)
    assert not list(tmp_path.glob("*.pkl")) and not list(tmp_path.glob("*.skops"))
    assert np.allclose(module.load(tmp_path).predict_proba(X), model.predict_proba(X), atol=1e-6)


def test_attentive_learns_which_layer_carries_the_class():
    model, _, _ = fitted("attentive", max_epochs=25, patience=25, mixup_p=0.0, lr=3e-3)
    weights = classifiers.final_step(model).fit_facts_["layer_weights"]
    assert int(np.argmax(weights)) == 1, weights  # frame_data puts the class into layer 1 only


def test_a_small_corpus_trains_the_whole_schedule_of_at_least_min_steps():
    """attentive's defaults: no early stopping (validation_fraction 0), at least min_steps optimizer steps: 96
    clips in batches of 16 are 6 steps an epoch, so 30 steps take 5 epochs where max_epochs says 2."""
    model, _, _ = fitted("attentive", max_epochs=2, min_steps=30, validation_fraction=0.0)
    step = classifiers.final_step(model)
    assert len(step.history_) == step.epochs_ == 5 and step.best_epoch_ == 5
    assert step.fit_facts_["early_stopping"] == ("off: attentive.validation_fraction is 0; trained the whole "
                                                 "schedule: 5 epochs")
    defaults = classifiers.get("attentive").Params()
    assert defaults.validation_fraction == 0 and defaults.min_steps == 1000 and defaults.layer_weights_lr == 1e-2


def test_warmup_then_cosine():
    f = warmup_cosine(10, 110)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.5) and f(110) == pytest.approx(0.0, abs=1e-9)


def test_spec_augment_masks_inside_the_clip_only():
    x = torch.ones(2, 50, 1, 20)
    lengths = torch.tensor([50, 30])
    s = classifiers.get("attentive").Params(time_masks=2, time_mask_fraction=0.2, feature_masks=1, feature_mask_width=5)
    out = spec_augment(x, lengths, s, np.random.default_rng(0))
    assert 0 < (out == 0).float().mean() < 0.6
    assert ((out[1, 30:] == 0) | (out[1, 30:] == 1)).all()


def test_config_refuses_a_sequence_classifier_on_vectors_and_vice_versa():
    with pytest.raises(ValueError, match="set features.pooling: none"):
        Params(classifier="cnn_bilstm")
    with pytest.raises(ValueError, match="one vector per clip"):
        Params(classifier="svm", features={"pooling": "none"})


@pytest.mark.parametrize("kind, extractor", [("cnn_bilstm", "mfcc"), ("attentive", "ssl")])
def test_frames_train_and_predict_end_to_end(kind, extractor, tmp_path):
    """MFCC frames (40 x T) and a tiny WavLM's frames of all layers: extracted into frames.npy, cross-
    validated and trained by the library's training function, then predict on new files."""
    from model_fixtures import tiny_wavlm

    synthetic.generate(tmp_path / "corpus", speakers=6, clips=4, classes=["angry", "happy", "sad"], duration=1.0,
                       seed=0)
    clips = synthetic.scan(tmp_path / "corpus", Params())
    feats = {"extractor": extractor, "pooling": "none", "layers": "all", "device": "cpu"}
    if extractor == "ssl":
        feats["model"] = str(tiny_wavlm(tmp_path / "encoder"))
    params = Params.model_validate({"dataset": "synthetic", "features": feats, "augment": {"n_augmentations": 0},
                                    "cv": {"folds": 3}, "classifier": kind, kind: SHORT})
    test = clips["speaker"] == "spk05"
    fit, embedded = train_models(tmp_path, clips[~test].reset_index(drop=True), params)
    assert isinstance(embedded.X, FrameSet) and embedded.X.frames.dtype == np.float16
    if extractor == "mfcc":
        assert embedded.X.shape[1:] == (1, 40)
    assert len(fit.oof) == (~test).sum() and fit.summary["protocol"]
    results = list(Predictor.load(tmp_path / "models").predict(clips.loc[test, "path"]))
    assert all(r.ok for r in results) and all(abs(r.proba.sum() - 1) < 1e-6 for r in results)


def test_strided_in_memory_equals_striding_each_batch():
    from ser.models.classifiers.sequence_inputs import stride_frames

    X, _, _ = frame_data(clips=6)
    strided = X[np.array([4, 1, 2])].strided(4)
    assert strided.stride == 4 and strided.frames.dtype == np.float32
    x, lengths = X[np.array([4, 1, 2])].batch([0, 1, 2])
    expected, n = stride_frames(torch.from_numpy(x).float(), torch.from_numpy(lengths), 4)
    got, m = strided.batch([0, 1, 2])
    assert np.array_equal(n.numpy(), m)
    for row, k in enumerate(m):
        assert np.allclose(got[row, :k], expected[row, :k].numpy(), atol=1e-6)
    assert X.strided(4, max_bytes=10) is X and X.strided(1) is X  # too big for memory: striding per batch


def test_extractors_without_frames_say_which_setting_to_change():
    from ser import features
    from ser.errors import ConfigError

    with pytest.raises(ConfigError, match="features.pooling: mean"):
        features.build(Params(classifier="attentive", features={"extractor": "egemaps", "pooling": "none"}))
    with pytest.raises(ConfigError, match="mean_std does not apply to mfcc"):
        features.build(Params(features={"extractor": "mfcc", "pooling": "mean_std"}))


@pytest.mark.parametrize("kind", ["attentive", "cnn_bilstm"])
def test_optuna_searches_the_sequence_classifiers(kind, tmp_path):
    from ser.models import tuning

    X, y, meta = frame_data(clips=60)
    params = Params(classifier=kind, features={"pooling": "none"}, **{kind: {**SHORT, "max_epochs": 2}},
                    tune={"enabled": True, "n_trials": 2, "storage": f"sqlite:///{tmp_path}/optuna.db"})
    found = tuning.tune(X, y, meta, params, tuning.study_name(params, tuning.fingerprint(X, meta, params), "fold0"))
    assert found.n_trials == 2 and set(found.best_params) >= {"lr", "dropout", "mixup_p"}
    assert getattr(tuning.with_overrides(params, found.best_params), kind).lr == found.best_params["lr"]
