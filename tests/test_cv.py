"""Cross-validation never lets a test speaker, or any copy of a test clip, into training."""

import numpy as np
import pandas as pd
import pytest
from embedding_fixtures import make_embeddings
from sklearn.linear_model import LogisticRegression

from ser.models.cv import CVResult, Plan, cross_validate, outer_folds, plan
from ser.models.inner_splits import grouped_folds, validation_split


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("folds", [2, 3, 5])
def test_speaker_folds_keep_speakers_and_copies_of_test_clips_out_of_training(seed, folds):
    _, meta = make_embeddings(clips=300, speakers=11, copies=2, weights=[3, 1, 1, 2], seed=seed)
    tested = []
    for train, test in outer_folds(meta, Plan(folds, "speaker", folds), seed):
        tr, te = meta.iloc[train], meta.iloc[test]
        assert set(tr["speaker"]).isdisjoint(te["speaker"])
        assert set(tr["clip_id"]).isdisjoint(te["clip_id"])
        assert (te["aug"] == 0).all()
        assert (tr["aug"] > 0).any()  # the copies of training clips are used
        tested += list(te["clip_id"])
    assert sorted(tested) == sorted(meta.loc[meta["aug"] == 0, "clip_id"])  # each original tested once


@pytest.mark.parametrize("seed", [0, 1])
def test_plain_stratified_folds_still_keep_copies_with_their_clip(seed):
    _, meta = make_embeddings(clips=200, speakers=4, copies=2, seed=seed)
    shared = 0
    for train, test in outer_folds(meta, Plan(5, "none", 5), seed):
        tr, te = meta.iloc[train], meta.iloc[test]
        assert set(tr["clip_id"]).isdisjoint(te["clip_id"])
        assert (te["aug"] == 0).all()
        shared += len(set(tr["speaker"]) & set(te["speaker"]))
    assert shared > 0  # speakers are shared: the protocol must say so
    assert "not speaker-independent" in Plan(5, "none", 5).protocol
    assert "speaker-independent" in Plan(5, "speaker", 5).protocol


def test_fewer_speakers_than_folds_is_leave_one_speaker_out():
    _, meta = make_embeddings(clips=60, speakers=3)
    cv = plan(meta["speaker"].to_numpy(), 5, "speaker")
    assert cv.folds == 3 and cv.leave_one_speaker_out
    assert cv.protocol.startswith("leave-one-speaker-out") and "cv.folds=5" in cv.protocol
    for _, test in outer_folds(meta, cv, 0):
        assert meta["speaker"].iloc[test].nunique() == 1
    assert not plan(meta["speaker"].to_numpy(), 3, "speaker").leave_one_speaker_out


def test_one_speaker_names_the_fix():
    with pytest.raises(ValueError, match="cv.group_by: none"):
        plan(np.array(["a", "a", "a"]), 5, "speaker")


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_validation_split_holds_out_whole_speakers_and_scores_only_originals(seed):
    _, meta = make_embeddings(clips=300, speakers=10, copies=2, seed=seed)
    y = meta["label"].to_numpy()
    train, val, units = validation_split(y, meta["speaker"].to_numpy(), meta["clip_id"].to_numpy(),
                                         meta["aug"].to_numpy(), fraction=0.2, seed=seed)
    assert units == "speakers"
    tr, va = meta.iloc[train], meta.iloc[val]
    assert set(tr["speaker"]).isdisjoint(va["speaker"])
    assert set(tr["clip_id"]).isdisjoint(va["clip_id"])
    assert (va["aug"] == 0).all() and len(va) > 0
    assert va["speaker"].nunique() == 2  # a fifth of 10 speakers


def test_validation_split_without_speakers_holds_out_whole_clips():
    _, meta = make_embeddings(clips=100, speakers=2, copies=1)
    train, val, units = validation_split(meta["label"].to_numpy(), None, meta["clip_id"].to_numpy(),
                                         meta["aug"].to_numpy())
    assert units == "clips"
    assert set(meta["clip_id"].iloc[train]).isdisjoint(meta["clip_id"].iloc[val])
    assert (meta["aug"].iloc[val] == 0).all()


def test_validation_split_with_one_speaker_falls_back_to_clips_and_says_so():
    _, meta = make_embeddings(clips=100, speakers=1, copies=1)
    train, val, units = validation_split(meta["label"].to_numpy(), meta["speaker"].to_numpy(),
                                         meta["clip_id"].to_numpy(), meta["aug"].to_numpy())
    assert units.startswith("clips (fallback: 1 speaker")
    assert len(val) > 0 and set(meta["clip_id"].iloc[train]).isdisjoint(meta["clip_id"].iloc[val])


def test_grouped_folds_without_scored_rows_partition_all_rows():
    _, meta = make_embeddings(clips=120, speakers=6, copies=1)
    folds = grouped_folds(meta["label"].to_numpy(), meta["speaker"].to_numpy(), 3, seed=0)
    held = np.concatenate([test for _, test in folds])
    assert sorted(held) == list(range(len(meta)))
    for train, test in folds:
        assert set(meta["speaker"].iloc[train]).isdisjoint(meta["speaker"].iloc[test])


class _WithHistory(LogisticRegression):
    """A real classifier that also keeps a (fake) per-epoch history, as the MLP does."""

    def fit(self, X, y):
        super().fit(X, y)
        self.history_ = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0, "val_uar": 0.5}]
        return self


def test_cross_validate_returns_out_of_fold_probabilities_and_fold_facts():
    X, meta = make_embeddings(clips=200, speakers=8, copies=1, separation=2.0)
    labels = sorted(meta["label"].unique())
    y = meta["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    seen = []

    def fit_fold(rows, k):
        seen.append(rows)
        return _WithHistory(max_iter=500).fit(X[rows], y[rows]), {"note": f"fold {k}"}

    result = cross_validate(X, meta, labels, fit_fold, Plan(4, "speaker", 4), seed=0)
    assert isinstance(result, CVResult)
    oof = result.oof
    assert len(oof) == 200 and oof["clip_id"].is_unique
    proba = oof[[f"p_{lab}" for lab in labels]].to_numpy()
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    assert (oof["predicted"] == pd.Series(labels).iloc[proba.argmax(1)].to_numpy()).all()
    assert [f["note"] for f in result.folds] == [f"fold {k}" for k in range(4)]
    assert all({"accuracy", "uar", "macro_f1", "weighted_f1"} <= set(f) for f in result.folds)
    assert all(f["test_classes"] == labels and f["missing_classes"] == [] for f in result.folds)
    assert sorted(result.histories) == [0, 1, 2, 3]
    assert np.mean(oof["actual"] == oof["predicted"]) > 0.5  # 4 classes, well separated
    for rows, k in zip(seen, range(4)):
        assert set(meta["speaker"].iloc[rows]).isdisjoint(oof.loc[oof["fold"] == k, "speaker"])


def test_folds_whose_test_side_lacks_a_class_say_so():
    X, meta = make_embeddings(clips=240, speakers=8, classes=3, seed=0)
    rare = meta["speaker"].isin(["spk000", "spk001"]) & (meta["label"] == "class0")
    meta.loc[rare, "label"] = "rare"  # recorded by two speakers only: most test folds hold none
    labels = sorted(meta["label"].unique())
    y = meta["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    result = cross_validate(X, meta, labels, lambda rows, k: (LogisticRegression(max_iter=300).fit(X[rows], y[rows]),
                                                              {}), Plan(4, "speaker", 4), seed=0)
    flagged = [f for f in result.folds if f["missing_classes"]]
    assert flagged and all(f["missing_classes"] == ["rare"] and "rare" not in f["test_classes"] for f in flagged)
    tested = {s for f in result.folds if "rare" in f["test_classes"] for s in
              result.oof.loc[result.oof["fold"] == f["fold"], "speaker"]}
    assert {"spk000", "spk001"} & tested


def test_test_time_augmentation_averages_each_test_clip_with_its_own_copies():
    X, meta = make_embeddings(clips=120, speakers=6, copies=2, separation=2.0)
    labels = sorted(meta["label"].unique())
    y = meta["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    models = []

    def fit_fold(rows, k):
        models.append(LogisticRegression(max_iter=500).fit(X[rows], y[rows]))
        return models[-1], {}

    plain = cross_validate(X, meta, labels, fit_fold, Plan(3, "speaker", 3), seed=0)
    models.clear()
    tta_plan = Plan(3, "speaker", 3, tta=True)
    tta = cross_validate(X, meta, labels, fit_fold, tta_plan, seed=0)
    assert "test-time augmentation" in tta_plan.protocol and "cv.tta" in tta_plan.protocol
    columns = [f"p_{lab}" for lab in labels]
    row = tta.oof.iloc[0]
    fold, clip = int(row["fold"]), row["clip_id"]
    own = np.flatnonzero(meta["clip_id"].to_numpy() == clip)
    assert len(own) == 3  # the original and two copies
    np.testing.assert_allclose(row[columns].to_numpy(float), models[fold].predict_proba(X[own]).mean(0), atol=1e-9)
    assert not np.allclose(plain.oof[columns].to_numpy(), tta.oof[columns].to_numpy())
    assert (plain.oof["clip_id"] == tta.oof["clip_id"]).all()
