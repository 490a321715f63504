"""Metrics against hand-computed values, metrics.json shape, and the evaluate stage's figures."""

import json
from pathlib import Path
from runpy import run_path

import numpy as np
import pandas as pd
import pytest
from png_checks import assert_picture, ink

from ser.evaluation import plots
from ser.evaluation.bootstrap import no_interval
from ser.evaluation.metrics import scores
from ser.evaluation.names import feature_source, features_label, short_model
from ser.evaluation.plots import best_epoch, fold_name, fold_spread_png, learning_curves_png, per_class_png
from ser.evaluation.report import evaluate, fold_table, read_learning_curves, run_context, short_protocol

ROOT = Path(__file__).resolve().parents[1]

# 6 a, 2 b, 2 c; every a right, one b and one c mistaken for a.
TRUE = ["a"] * 6 + ["b", "b", "c", "c"]
PRED = ["a"] * 6 + ["a", "b", "a", "c"]


def test_scores_match_hand_computed_values():
    s = scores(TRUE, PRED, ["a", "b", "c"])
    assert s["accuracy"] == pytest.approx(8 / 10)
    assert s["uar"] == pytest.approx((1 + 0.5 + 0.5) / 3)  # recall a, b, c
    f1_a, f1_bc = 2 * 0.75 * 1 / 1.75, 2 * 1 * 0.5 / 1.5  # precision a = 6/8; b, c = 1/1
    assert s["macro_f1"] == pytest.approx((f1_a + 2 * f1_bc) / 3)
    assert s["weighted_f1"] == pytest.approx((6 * f1_a + 2 * f1_bc + 2 * f1_bc) / 10)
    assert s["per_class"]["a"] == {"precision": 0.75, "recall": 1.0, "f1": pytest.approx(f1_a), "support": 6}
    assert s["per_class"]["b"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(f1_bc), "support": 2}
    assert s["confusion"] == [[6, 0, 0], [1, 1, 0], [1, 0, 1]]


def test_uar_is_not_fooled_by_a_majority_guesser():
    s = scores(TRUE, ["a"] * 10, ["a", "b", "c"])
    assert s["accuracy"] == pytest.approx(0.6)
    assert s["uar"] == pytest.approx(1 / 3)
    assert s["macro_f1"] == pytest.approx((2 * 0.6 / 1.6) / 3)


def test_uar_averages_only_classes_that_occur():
    s = scores(["a", "a", "b"], ["a", "c", "b"], ["a", "b", "c"])  # c predicted, never true
    assert s["uar"] == pytest.approx((0.5 + 1) / 2)
    assert s["per_class"]["c"]["support"] == 0


def oof_frame(true=TRUE, pred=PRED, folds=2) -> pd.DataFrame:
    labels = sorted(set(true))
    proba = np.array([[1.0 if lab == p else 0.0 for lab in labels] for p in pred])
    frame = pd.DataFrame({"fold": np.arange(len(true)) % folds, "clip_id": [f"c{i}" for i in range(len(true))],
                          "speaker": [f"s{i % 4}" for i in range(len(true))], "actual": true, "predicted": pred})
    return frame.assign(**{f"p_{lab}": proba[:, i] for i, lab in enumerate(labels)})


def cv_summary(oof: pd.DataFrame, labels: list[str]) -> dict:
    folds = []
    for k, part in oof.groupby("fold"):
        s = scores(part["actual"], part["predicted"], labels)
        folds.append({"fold": int(k), "test_clips": len(part), **{m: s[m] for m in
                                                                  ("accuracy", "uar", "macro_f1", "weighted_f1")}})
    table = pd.DataFrame(folds)
    metrics = ["accuracy", "uar", "macro_f1", "weighted_f1"]
    return {"protocol": "2-fold speaker-independent CV (StratifiedGroupKFold by speaker)", "classifier": "svm",
            "folds": folds, "mean": table[metrics].mean().to_dict(), "std": table[metrics].std(ddof=0).to_dict()}


PREPARED = {"dataset": "synthetic", "clips": 10, "excluded": 2, "speakers": 4, "hours": 0.01, "labels": {},
            "excluded_by_step": {"prepare": 2}}
FEATURES = {"feature_params": {"features": {"extractor": "ssl", "model": "/models/cache/wavlm-base-plus",
                                             "layers": "last"}}, "rows": 10, "dim": 8, "failed": 1,
            "failed_clips": [{"clip_id": "z", "path": "/z.wav", "reason": "RuntimeError: broken"}]}


def leaves(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def test_metrics_json_is_flat_numbers_and_short_strings():
    oof = oof_frame()
    summary = cv_summary(oof, ["a", "b", "c"])
    summary["novelty"] = {"method": "knn", "threshold": 0.123456, "false_rejection_target": 0.05,
                          "false_rejection_cross_fitted": 0.0712345, "false_rejection_per_fold": {"0": 0.1},
                          "threshold_from": "held-out speakers", "applies": False}
    context = run_context(oof, PREPARED, FEATURES, summary["protocol"], "synthetic", "svm")
    metrics, confusion = evaluate(oof, summary, context)

    assert metrics["accuracy"] == 0.8 and metrics["uar"] == pytest.approx(0.6667)
    assert confusion == [[6, 0, 0], [1, 1, 0], [1, 0, 1]]
    assert set(metrics) == {"accuracy", "uar", "macro_f1", "weighted_f1", "ci95", "cv", "per_class", "context",
                            "novelty"}
    ci = metrics["ci95"]  # 4 speakers: no interval, and why
    assert ci == {"none": no_interval(4), "resamples": 0, "over": "speakers"}
    more = oof.assign(speaker=[f"s{i}" for i in range(len(oof))])  # 10 speakers: an interval
    ci = evaluate(more, summary, context)[0]["ci95"]
    assert ci["uar_low"] <= metrics["uar"] <= ci["uar_high"] and ci["accuracy_low"] <= 0.8 <= ci["accuracy_high"]
    assert ci["over"] == "speakers" and ci["resamples"] == 1000
    assert metrics["novelty"] == {"method": "knn", "threshold": 0.1235, "false_rejection_target": 0.05,
                                  "false_rejection_cross_fitted": 0.0712,
                                  "threshold_rejects": "no: set on held-out speakers"}
    assert metrics["cv"]["uar_mean"] == pytest.approx(round(summary["mean"]["uar"], 4))
    assert {f"{m}_{s}" for m in ("accuracy", "uar", "macro_f1", "weighted_f1") for s in ("mean", "std")} == set(
        metrics["cv"])
    assert set(metrics["per_class"]["b"]) == {"precision", "recall", "f1", "support"}
    assert context == {"dataset": "synthetic (SYNTHETIC audio)", "clips": 10, "speakers": 4, "hours": 0.01,
                       "excluded_clips": 3, "excluded": {"prepare": 2, "extract": 1}, "classes": 3,
                       "protocol": "2-fold speaker-independent CV",
                       "extractor": "ssl", "model": "wavlm-base-plus", "classifier": "svm"}
    # what `dvc metrics show` can render: no lists or nulls (it drops them), at most 3 levels, short strings
    for key, value in leaves(metrics):
        assert isinstance(value, int | float | str) and not isinstance(value, bool), key
        assert key.count(".") <= 2, key
        assert not isinstance(value, str) or len(value) <= 40, (key, value)
    json.dumps(metrics, allow_nan=False)


def test_short_names():
    assert short_protocol("5-fold stratified CV, speakers shared across folds (not speaker-independent)") == \
        "5-fold stratified CV, speakers shared across folds"
    tta = "5-fold speaker-independent CV (StratifiedGroupKFold by speaker), test-time augmentation: each test clip " \
          "averaged with its augmented copies (cv.tta)"
    assert short_protocol(tta) == "5-fold speaker-independent CV, TTA"
    assert short_model({"extractor": "mfcc", "n_mfcc": 40}) == "none"
    assert short_model({"model": "openai/whisper-base"}) == "openai/whisper-base"
    assert features_label({"extractor": "whisper", "model": "./weights/whisper-base"}) == "whisper (whisper-base)"
    assert features_label({"extractor": "mfcc"}) == "mfcc"
    mfcc = {"feature_params": {"features": {"extractor": "mfcc", "model": "microsoft/wavlm-large"}}}
    assert feature_source(mfcc) == {"extractor": "mfcc"}  # the model setting is unused by mfcc
    assert feature_source(FEATURES) == {"extractor": "ssl", "model": "/models/cache/wavlm-base-plus"}


def curves(with_final: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    parts = []
    for fold in ["0", "1", "2"] + (["final"] if with_final else []):
        epochs = np.arange(1, 21)
        parts.append(pd.DataFrame({"fold": fold, "epoch": epochs, "train_loss": 1.5 * np.exp(-epochs / 6) + 0.2,
                                   "val_loss": 1.5 * np.exp(-epochs / 8) + 0.5 + rng.normal(0, 0.02, 20),
                                   "val_uar": 0.7 - 0.4 * np.exp(-epochs / 5) + rng.normal(0, 0.01, 20)}))
    table = pd.concat(parts, ignore_index=True)
    table.loc[table["fold"] == "final", ["val_loss", "val_uar"]] = np.nan  # a fit without a validation split
    return table


def test_learning_curves_png(tmp_path):
    csv = tmp_path / "learning_curves.csv"
    curves().to_csv(csv, index=False)
    table = read_learning_curves(csv)
    assert table["fold"].tolist().count("final") == 20
    learning_curves_png(table, "mlp", "test", tmp_path / "curves.png")
    drawn = assert_picture(tmp_path / "curves.png", min_ink=0.03)
    assert drawn.shape[1] > 2 * drawn.shape[0]  # two panels side by side


@pytest.mark.parametrize("content", ["fold,epoch,train_loss,val_loss,val_uar\n", None])
def test_learning_curves_without_epochs_say_so(tmp_path, content):
    csv = tmp_path / "learning_curves.csv"
    if content is not None:
        csv.write_text(content)
    table = read_learning_curves(csv)
    assert table.empty
    learning_curves_png(table, "svm", "test", tmp_path / "curves.png")
    assert_picture(tmp_path / "curves.png", min_ink=0.003, min_side=100)
    assert ink(tmp_path / "curves.png") < 0.03  # only the message


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions would save, kept open for inspection."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    yield figures
    for fig in figures:
        plots.plt.close(fig)


def legend_texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in (ax.get_legend().get_texts() if ax.get_legend() else [])] + [
        t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_best_epoch_is_the_one_the_mlp_keeps():
    # epochs 2 and 4 tie on UAR; the MLP keeps 4, whose validation loss is lower (key: uar, -loss)
    curve = pd.DataFrame({"epoch": [1, 2, 3, 4, 5], "val_uar": [0.5, 0.7, 0.6, 0.7, 0.7],
                          "val_loss": [1.0, 0.9, 0.8, 0.7, 0.7]})
    assert best_epoch(curve) == 4  # 5 ties 4 on both: the earlier is kept
    assert best_epoch(curve.assign(val_uar=np.nan, val_loss=np.nan)) == 5  # no validation: the last epoch


def test_learning_curve_dot_marks_the_kept_epoch(tmp_path, drawn):
    table = pd.DataFrame({"fold": "0", "epoch": [1, 2, 3], "train_loss": [1.0, 0.8, 0.7],
                          "val_loss": [1.1, 0.9, 0.6], "val_uar": [0.4, 0.6, 0.6]})
    learning_curves_png(table, "mlp", "test", tmp_path / "curves.png")
    (fig,) = drawn
    dots = [c.get_offsets().tolist() for c in fig.axes[1].collections]
    assert dots == [[[3.0, 0.6]]]
    assert "fold 1" in legend_texts(fig)


def test_folds_are_numbered_from_one():
    assert [fold_name(k) for k in (0, 4, "2", "final")] == ["fold 1", "fold 5", "fold 3", "final fit"]


def test_per_class_bars_have_a_labelled_chance_line(tmp_path, drawn):
    per_class = {c: {"precision": 0.5, "recall": 0.6, "f1": 0.55, "support": 3} for c in "abcd"}
    per_class_png(per_class, "test", tmp_path / "per_class.png")
    (fig,) = drawn
    (line,) = fig.axes[0].get_lines()
    assert list(line.get_ydata()) == [0.25, 0.25]
    assert "chance 1/4 = 0.250" in legend_texts(fig)


def test_fold_spread_png(tmp_path):
    oof = oof_frame(TRUE * 3, PRED[::-1] * 3, folds=5)
    summary = cv_summary(oof, ["a", "b", "c"])
    folds = fold_table(summary)
    assert len(folds) == 5
    assert list(folds.columns) == ["fold", "accuracy", "uar", "macro_f1", "weighted_f1", "missing_classes"]
    metrics, _ = evaluate(oof, summary, {})
    fold_spread_png(folds, metrics, "test", tmp_path / "folds.png", chance=1 / 3)
    assert_picture(tmp_path / "folds.png", min_ink=0.03)


def test_fold_spread_legend_counts_folds_from_one(tmp_path, drawn):
    oof = oof_frame(TRUE * 3, PRED[::-1] * 3, folds=5)
    summary = cv_summary(oof, ["a", "b", "c"])
    metrics, _ = evaluate(oof, summary, {})
    fold_spread_png(fold_table(summary), metrics, "test", tmp_path / "folds.png")
    (fig,) = drawn
    assert [t for t in legend_texts(fig) if t.startswith("fold")] == [f"fold {k}" for k in range(1, 6)]


def test_evaluate_stage_writes_metrics_and_figures(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("dataset: synthetic\nclassifier: svm\nfeatures: {extractor: mfcc}\n")
    for d in ("models", "results", "data", "embeddings"):
        (tmp_path / d).mkdir()
    oof = oof_frame(TRUE * 4, PRED * 4, folds=4)
    oof["novelty"] = np.linspace(0, 3, len(oof))
    oof.to_csv("models/oof.csv", index=False)
    summary = cv_summary(oof, ["a", "b", "c"])
    summary["novelty"] = {"method": "mahalanobis", "threshold": 2.9, "false_rejection_target": 0.05,
                          "false_rejection_cross_fitted": 0.06, "threshold_from": "held-out corpora", "applies": True}
    (tmp_path / "results/cv.json").write_text(json.dumps(summary))
    (tmp_path / "data/prepare.json").write_text(json.dumps(PREPARED))
    (tmp_path / "data/excluded.csv").write_text("clip_id,path,label,speaker,reason,step\n"
                                                "x,/x.wav,a,s1,empty file,prepare\ny,/y.wav,b,s2,empty file,prepare\n")
    (tmp_path / "embeddings/features.json").write_text(json.dumps(FEATURES))
    curves().to_csv("results/learning_curves.csv", index=False)
    (tmp_path / "results/cross_corpus.json").write_text(json.dumps({"other": {"uar": 0.5, "clips": 3}}))
    (tmp_path / "results/cross_corpus.csv").write_text(
        "corpus,clip_id,speaker,actual,predicted,unknown,error\nother,o1,s9,a,a,False,\n"
        "other,o2,s9,b,,,not decodable audio: format not recognised\n")

    run_path(str(ROOT / "stages/evaluate.py"))["main"]()  # works whatever sys.path holds

    metrics = json.loads((tmp_path / "results/metrics.json").read_text())
    assert metrics["accuracy"] == 0.8 and metrics["context"]["clips"] == 40
    assert metrics["cross_corpus"] == {"other": {"uar": 0.5, "clips": 3}}
    assert len(pd.read_csv("results/predictions.csv")) == 40
    left = pd.read_csv("results/left_out.csv")  # the prepare exclusions, extraction's loss, crosstest's
    assert left["step"].tolist() == ["prepare", "prepare", "extract", "crosstest other"] and len(left) == 4
    assert left["reason"].iloc[3] == "not decodable audio: format not recognised"
    for name in ("confusion", "per_class", "cv_folds", "learning_curves", "risk_coverage"):
        assert_picture(tmp_path / f"results/{name}.png")


def test_a_fold_that_tests_no_clip_of_a_class_is_flagged_in_the_plot(tmp_path, drawn):
    oof = oof_frame(TRUE * 3, PRED[::-1] * 3, folds=5)
    summary = cv_summary(oof, ["a", "b", "c"])
    summary["folds"][1]["missing_classes"] = ["c"]
    metrics, _ = evaluate(oof, summary, {})
    fold_spread_png(fold_table(summary), metrics, "test", tmp_path / "folds.png")
    (fig,) = drawn
    assert [t for t in legend_texts(fig) if t.startswith("fold")][:2] == ["fold 1", "fold 2 (tests no c)"]
