"""ser.trust (novelty scores, their cross-fitted threshold, uncertainty) and the speaker bootstrap."""

import numpy as np
import pandas as pd
import pytest

from ser.evaluation.bootstrap import MIN_SPEAKERS, speaker_bootstrap
from ser.models.cv import plan
from ser.trust.crossfit import fit_novelty
from ser.trust.novelty import Novelty
from ser.trust.params import TrustParams
from ser.trust.uncertainty import entropy, margin, risk_coverage


def clusters(n_per: int = 40, dim: int = 12, classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (classes, dim))
    y = np.repeat(np.arange(classes), n_per)
    return centres[y] + rng.normal(0, 1, (len(y), dim)), y, centres


@pytest.mark.parametrize("method", ["mahalanobis", "knn"])
def test_far_away_vectors_score_higher_and_the_score_survives_saving(method, tmp_path):
    V, y, centres = clusters()
    scorer = Novelty.fit(method, V, y, k=5)
    near = centres[y] + np.random.default_rng(2).normal(0, 1, V.shape)  # the same classes, new draws
    far = np.random.default_rng(3).normal(0, 1, (30, V.shape[1])) * 3 + 15
    proba = np.full((len(V), 3), 1 / 3)
    in_scores, out_scores = scorer.score(near, proba), scorer.score(far, proba[:30])
    assert np.median(in_scores) < np.min(out_scores)
    scorer.save(tmp_path)
    back = Novelty.load(tmp_path)
    assert back.method == method and back.k == 5
    np.testing.assert_allclose(back.score(far, proba[:30]), out_scores)


def test_knn_is_the_kth_neighbour_distance_and_never_builds_the_whole_distance_matrix():
    import tracemalloc

    rng = np.random.default_rng(0)
    bank, queries = rng.normal(size=(4000, 32)), rng.normal(size=(4000, 32))  # 32 > 15: a brute-force search
    scorer = Novelty.fit("knn", bank, np.zeros(len(bank), int), k=3)
    Z = (queries[:50] - scorer.arrays["mean"]) / scorer.arrays["scale"]
    brute = np.sort(np.linalg.norm(Z[:, None] - scorer.arrays["bank"][None].astype(np.float64), axis=2), 1)[:, 2]
    np.testing.assert_allclose(scorer.score(queries[:50], None), brute, rtol=1e-5)
    tracemalloc.start()
    scorer.score(queries, None)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 32e6, f"{peak / 1e6:.0f} MB: the 4000 x 4000 distance matrix alone is 128 MB"


def test_mahalanobis_uses_the_shared_covariance_not_plain_distance():
    """Two features that move together: a step along their correlation costs little, a much shorter step
    against it costs a lot."""
    rng = np.random.default_rng(0)
    u = rng.normal(0, 1, 400)
    V = np.column_stack([u, u + rng.normal(0, 0.1, 400)])
    scorer = Novelty.fit("mahalanobis", V, np.zeros(400, int))
    along, across = scorer.score(np.array([[2.0, 2.0], [0.3, -0.3]]), np.ones((2, 1)))
    assert along == pytest.approx(2.0, rel=0.2) and across > along  # plain distance: across is 7x nearer


def test_msp_is_one_minus_the_top_probability():
    proba = np.array([[0.7, 0.2, 0.1], [0.34, 0.33, 0.33]])
    np.testing.assert_allclose(Novelty.fit("msp", None, np.zeros(2)).score(None, proba), [0.3, 0.66])
    with pytest.raises(ValueError, match="trust.novelty"):
        Novelty.fit("energy", None, np.zeros(2))


def corpus(speakers: int = 10, per: int = 12, seed: int = 0):
    V, y, _ = clusters(n_per=speakers * per // 3, seed=seed)
    meta = pd.DataFrame({"clip_id": [f"c{i}" for i in range(len(y))], "label": y.astype(str),
                         "speaker": [f"s{i % speakers}" for i in range(len(y))], "aug": 0})
    return V, y, meta


def test_the_threshold_rejects_about_the_target_share_of_unseen_speakers_measured_cross_fitted():
    V, y, meta = corpus()
    cv = plan(meta["speaker"].to_numpy(), 5, "speaker")
    proba = np.full((len(y), 3), 1 / 3)
    fitted = fit_novelty(V, meta, y, proba, cv, 0, TrustParams(false_rejection=0.1))
    s = fitted.summary
    assert s["threshold"] == pytest.approx(np.quantile(fitted.oof_scores, 0.9))
    assert 0.02 <= s["false_rejection_cross_fitted"] <= 0.25 and len(s["false_rejection_per_fold"]) == 5
    assert s["fitted_on"] == len(y) and fitted.novelty.method == "mahalanobis"


def test_a_single_evaluated_fold_cannot_measure_false_rejection():
    V, y, meta = corpus()
    cv = plan(meta["speaker"].to_numpy(), 5, "speaker", max_folds=1)
    from ser.models.cv import outer_folds

    tested = len(outer_folds(meta, cv, 0)[0][1])
    fitted = fit_novelty(V, meta, y, np.full((tested, 3), 1 / 3), cv, 0, TrustParams())
    assert fitted.summary["false_rejection_cross_fitted"] is None and "cannot be cross-fitted" in fitted.summary[
        "protocol"]
    with pytest.raises(ValueError, match="out-of-fold rows"):
        fit_novelty(V, meta, y, np.full((tested + 1, 3), 1 / 3), cv, 0, TrustParams())


def test_entropy_margin_and_risk_coverage():
    proba = np.array([[1.0, 0.0, 0.0, 0.0], [0.25] * 4, [0.5, 0.3, 0.1, 0.1]])
    np.testing.assert_allclose(entropy(proba)[:2], [0.0, 1.0], atol=1e-9)
    np.testing.assert_allclose(margin(proba), [1.0, 0.0, 0.2])
    coverage, accuracy = risk_coverage(np.array([0.9, 0.8, 0.3, 0.2]), np.array([1, 1, 0, 1]))
    np.testing.assert_allclose(coverage, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(accuracy, [1.0, 1.0, 2 / 3, 0.75])


def oof_of(correct_by_speaker: dict[str, float], clips: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for speaker, rate in correct_by_speaker.items():
        for i in range(clips):
            actual = ["a", "b"][i % 2]
            wrong = {"a": "b", "b": "a"}[actual]
            rows.append({"speaker": speaker, "actual": actual, "predicted": actual if rng.random() < rate else wrong})
    return pd.DataFrame(rows)


def test_the_bootstrap_resamples_speakers():
    perfect = speaker_bootstrap(oof_of({f"s{i}": 1.0 for i in range(12)}), ["a", "b"], 0)
    assert perfect["uar"] == [1.0, 1.0] and perfect["speakers"] == 12
    # half the speakers always right, half always wrong: clip resampling would give a narrow interval
    # around 0.5; speakers are only 12 draws, so the interval is wide
    split = speaker_bootstrap(oof_of({f"s{i}": float(i % 2) for i in range(12)}), ["a", "b"], 0)
    low, high = split["uar"]
    assert low < 0.35 and high > 0.65 and low <= 0.5 <= high
    assert speaker_bootstrap(oof_of({f"s{i}": float(i % 2) for i in range(12)}), ["a", "b"], 0) == split


def test_too_few_speakers_give_no_interval_and_say_why():
    few = speaker_bootstrap(oof_of({f"s{i}": float(i % 2) for i in range(MIN_SPEAKERS - 1)}), ["a", "b"], 0)
    assert few["uar"] is None and few["accuracy"] is None and few["over"] == "speakers"
    assert few["none"] == f"none: {MIN_SPEAKERS - 1} speakers, under {MIN_SPEAKERS}"
    assert speaker_bootstrap(oof_of({f"s{i}": 1.0 for i in range(MIN_SPEAKERS)}), ["a", "b"], 0)["uar"] == [1.0, 1.0]


def test_a_corpus_without_speaker_ids_resamples_clips_and_says_so():
    oof = oof_of({"unknown": 0.5}, clips=200)
    ci = speaker_bootstrap(oof, ["a", "b"], 0)
    low, high = ci["uar"]
    assert ci["over"] == "clips" and ci["speakers"] == 1 and low < high  # one speaker alone: no interval at all

