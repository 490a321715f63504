"""Corpora and layouts a user brings: each runs with the defaults, or fails in prepare with the fix.

Small generated corpora (the synthetic generator's speech-like audio, laid out as a user's folder,
a CSV or a few-speaker corpus) run through the stage functions in-process: prepare, extract (MFCC,
no augmentation: seconds), train and evaluate, for every classifier.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ser.artifacts import read_json, read_table
from ser.corpora import synthetic
from ser.errors import ConfigError, DatasetError, FeatureError
from stages import crosstest as crosstest_stage
from stages import evaluate as evaluate_stage
from stages import extract as extract_stage
from stages import prepare as prepare_stage
from stages import train as train_stage

CLASSIFIERS = ["svm", "mlp", "xgboost"]
FAST = {"mlp": {"max_epochs": 8, "patience": 3, "hidden": [32, 16]}, "xgboost": {"n_estimators": 20}}


def generated(root: Path, speakers: int, clips: int, classes: list[str], seed: int = 0) -> list[tuple]:
    """Synthetic clips in ``root``: a list of (path, speaker, label)."""
    synthetic.generate(root, speakers, clips, classes, 1.0, seed)
    out = []
    for path in sorted(root.glob("*.wav")):
        speaker, label, _ = path.stem.split("_")
        out.append((path, speaker, label))
    return out


def clips_csv(root: Path, rows: list[tuple]) -> Path:
    """``root``/clips.csv with columns path,label,speaker from (path, speaker, label) rows."""
    csv = root / "clips.csv"
    table = pd.DataFrame([(str(p), lab, s) for p, s, lab in rows], columns=["path", "label", "speaker"])
    table.to_csv(csv, index=False)
    return csv


def write_params(root: Path, **overrides) -> None:
    params = {"dataset": "folder", "data": {"workers": 2},
              "features": {"extractor": "mfcc", "device": "cpu"}, "augment": {"n_augmentations": 0},
              **FAST}
    for key, value in overrides.items():
        params[key] = {**params[key], **value} if isinstance(value, dict) and key in params else value
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def set_classifier(root: Path, name: str) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump({**params, "classifier": name}))


def run_all(root: Path, monkeypatch, classifiers=CLASSIFIERS) -> dict[str, dict]:
    """prepare + extract once, then train + crosstest + evaluate per classifier: {classifier: metrics.json}."""
    monkeypatch.chdir(root)
    prepare_stage.main()
    extract_stage.main()
    metrics = {}
    for name in classifiers:
        set_classifier(root, name)
        train_stage.main()
        crosstest_stage.main()
        evaluate_stage.main()
        metrics[name] = {"metrics": read_json("results/metrics.json"), "cv": read_json("results/cv.json")}
    return metrics


def prepare_error(root: Path, monkeypatch) -> str:
    monkeypatch.chdir(root)
    with pytest.raises(DatasetError) as err:
        prepare_stage.main()
    assert not (root / "embeddings").exists() or not any((root / "embeddings").iterdir())
    return str(err.value)


@pytest.fixture
def label_folders(tmp_path):
    """A user's folder: one sub-folder per label, no speaker ids anywhere."""
    corpus = tmp_path / "corpus"
    for path, speaker, label in generated(tmp_path / "gen", 4, 6, ["angry", "happy", "sad"]):
        (corpus / label).mkdir(parents=True, exist_ok=True)
        shutil.move(path, corpus / label / f"{speaker}-{path.name}")
    write_params(tmp_path, data={"dir": str(corpus)})
    return tmp_path


@pytest.mark.timeout(300)
def test_label_folders_without_speakers_stop_in_prepare_then_run_with_group_by_none(label_folders, monkeypatch):
    message = prepare_error(label_folders, monkeypatch)
    assert "no speaker id" in message and "cv.group_by: none" in message
    assert "label sub-folders carry no speakers" in message  # the fix for this layout, not only a CSV column
    write_params(label_folders, data={"dir": str(label_folders / "corpus")}, cv={"group_by": "none"})
    runs = run_all(label_folders, monkeypatch)
    for name, run in runs.items():
        assert run["metrics"]["context"]["protocol"] == "5-fold stratified CV, speakers shared across folds", name
        assert run["metrics"]["uar"] > 0.5, name  # 3 classes of well-separated synthetic audio
    assert all(f["calibration_split"].endswith("by clips") for f in runs["svm"]["cv"]["folds"])
    assert all("held out by clips" in f["early_stopping"] for f in runs["mlp"]["cv"]["folds"])


@pytest.mark.timeout(300)
def test_two_speakers_run_leave_one_speaker_out_with_recorded_inner_fallbacks(tmp_path, monkeypatch):
    """TESS's shape: 2 speakers, fewer than the 5 default folds."""
    clips = generated(tmp_path / "corpus", 2, 8, ["angry", "happy", "neutral", "sad"])
    pd.DataFrame([(p.name, label, speaker) for p, speaker, label in clips],
                 columns=["path", "label", "speaker"]).to_csv(tmp_path / "corpus" / "clips.csv", index=False)
    with open(tmp_path / "corpus" / "clips.csv", "a") as f:
        f.write("lost.wav,,spk00\n")  # no label: skipped by the scan, reported to the end
    write_params(tmp_path, data={"csv": str(tmp_path / "corpus" / "clips.csv")})
    runs = run_all(tmp_path, monkeypatch)
    left = read_table("results/left_out.csv")
    assert left[["step", "path", "reason"]].values.tolist() == [
        ["scan", "lost.wav", "empty path or label in clips.csv"]]
    assert runs["svm"]["metrics"]["context"]["excluded"] == {"scan": 1, "extract": 0}
    for run in runs.values():  # which calibration predict applies, and the figures that chose it
        c = run["metrics"]["calibration"]
        assert (c["method"] == "temperature") == (c["nll_temperature_scaled"] < c["nll_uncalibrated"]), c
    prepared = read_json(tmp_path / "data/prepare.json")
    assert prepared["cv"]["folds"] == 2 and "leave-one-speaker-out" in prepared["cv"]["protocol"]
    assert any("train on one speaker" in note for note in prepared["cv"]["notes"])
    for name, run in runs.items():
        assert run["metrics"]["context"]["protocol"] == "leave-one-speaker-out CV", name
        assert run["cv"]["protocol"].startswith("leave-one-speaker-out CV (2 folds"), name
        assert len(run["cv"]["folds"]) == 2
    for fold in runs["svm"]["cv"]["folds"]:  # each fold trains on one speaker: calibration by clip, recorded
        assert "fallback: 1 speaker" in fold["calibration_split"]
    for fold in runs["mlp"]["cv"]["folds"]:  # no early stopping on the training speaker's own clips: fixed epochs
        assert fold["early_stopping"].startswith("off: the training rows hold one speaker"), fold["early_stopping"]
        assert fold["early_stopping"].endswith(f"trained the whole schedule: {FAST['mlp']['max_epochs']} epochs")
    assert runs["svm"]["cv"]["final"]["calibration_split"] == "2 folds by speakers"  # both speakers in the final fit


def test_a_class_recorded_by_one_speaker_stops_in_prepare(tmp_path, monkeypatch):
    rows = [(p, s, "tired" if s == "spk00" and label == "sad" else label)
            for p, s, label in generated(tmp_path / "corpus", 6, 3, ["angry", "happy", "sad"])]
    csv = clips_csv(tmp_path, rows)
    write_params(tmp_path, data={"csv": str(csv)})
    message = prepare_error(tmp_path, monkeypatch)
    assert "'tired'" in message and "1 speaker(s) recorded it (spk00)" in message
    assert "data.labels" in message and "data.label_map" in message


def test_one_class_stops_in_prepare(tmp_path, monkeypatch):
    clips = generated(tmp_path / "corpus", 6, 3, ["angry"])
    csv = clips_csv(tmp_path, clips)
    write_params(tmp_path, data={"csv": str(csv)})
    assert "one class ('angry'" in prepare_error(tmp_path, monkeypatch)


def test_a_class_with_one_clip_and_plain_folds_stops_in_prepare(tmp_path, monkeypatch):
    clips = generated(tmp_path / "corpus", 3, 4, ["angry", "sad"])
    csv = clips_csv(tmp_path, [(p, s, "rare" if i == 0 else lab) for i, (p, s, lab) in enumerate(clips)])
    write_params(tmp_path, data={"csv": str(csv)}, cv={"group_by": "none"})
    message = prepare_error(tmp_path, monkeypatch)
    assert "'rare'" in message and "1 clip(s)" in message and "lower cv.folds" not in message


@pytest.mark.timeout(300)
def test_labels_stay_strings_end_to_end(tmp_path, monkeypatch):
    """Zero-padded codes and words pandas would read as NaN survive to metrics.json and predict."""
    names = {"angry": "01", "happy": "NA", "neutral": "n/a", "sad": "3.5 très"}
    clips = generated(tmp_path / "corpus", 5, 5, list(names))
    csv = tmp_path / "clips.csv"
    pd.DataFrame([(str(p), names[lab], s) for p, s, lab in clips],
                 columns=["file_path", "emotion_code", "speaker"]).to_csv(csv, index=False)
    write_params(tmp_path, data={"csv": str(csv)})
    runs = run_all(tmp_path, monkeypatch, ["svm"])
    assert Path("results/reliability.png").stat().st_size > 0
    assert sorted(read_table("data/manifest.csv")["label"].unique()) == sorted(names.values())
    assert sorted(read_json("models/model.json")["labels"]) == sorted(names.values())
    predictions = read_table("results/predictions.csv")
    assert set(predictions["actual"]) == set(names.values()) and predictions["predicted"].isin(names.values()).all()
    csv_out = predict_csv(tmp_path, [clips[0][0]])
    assert csv_out["predicted"].isin(names.values()).all()
    assert {f"p_{name}" for name in names.values()} <= set(csv_out.columns)
    per_class = runs["svm"]["metrics"]["per_class"]
    assert sorted(per_class) == sorted(["01", "NA", "n/a", "3_5 très"])  # no dot: DVC would split the key
    assert not any("." in key for key in _flat_keys(runs["svm"]["metrics"]))


def predict_csv(root: Path, paths: list[Path]) -> pd.DataFrame:
    """Predict ``paths`` with the models/ this run trained, through the CSV output a user reads."""
    from ser.inference.output import write_output
    from ser.inference.predict import Predictor

    predictor = Predictor.load(root / "models")
    write_output(root / "predicted.csv", list(predictor.predict(paths)), predictor.labels)
    return read_table(root / "predicted.csv")


def _flat_keys(tree: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        out += _flat_keys(value, f"{prefix}{key}/") if isinstance(value, dict) else [prefix + key]
    return out


def test_a_label_map_typo_is_refused(tmp_path, monkeypatch):
    clips = generated(tmp_path / "corpus", 5, 2, ["angry", "sad"])
    csv = clips_csv(tmp_path, clips)
    write_params(tmp_path, data={"csv": str(csv), "label_map": {"angy": "sad"}})
    message = prepare_error(tmp_path, monkeypatch)
    assert "data.label_map" in message and "'angy'" in message and "'angry'" in message


def test_duplicate_audio_is_excluded_with_the_reason(tmp_path, monkeypatch):
    clips = generated(tmp_path / "corpus", 5, 3, ["angry", "sad"])
    copy = tmp_path / "corpus" / "zz_copy.wav"  # sorts last: the first clip id is kept
    shutil.copy(clips[0][0], copy)
    csv = clips_csv(tmp_path, [*clips, (copy, "spk04", clips[0][2])])  # same recording, another id and speaker
    write_params(tmp_path, data={"csv": str(csv)})
    monkeypatch.chdir(tmp_path)
    prepare_stage.main()
    excluded = read_table("data/excluded.csv")
    assert len(excluded) == 1 and excluded["path"].iloc[0] == str(copy)
    assert excluded["reason"].iloc[0] == f"duplicate audio: same content as clip {clips[0][0]}"
    summary = json.loads(Path("data/prepare.json").read_text())
    assert summary["excluded_reasons"] == {"duplicate audio": 1}
    assert not read_table("data/manifest.csv")["path"].eq(str(copy)).any()


def test_overlong_clips_are_excluded_with_the_reason(tmp_path, monkeypatch):
    clips = generated(tmp_path / "corpus", 5, 3, ["angry", "sad"])
    csv = clips_csv(tmp_path, clips)
    write_params(tmp_path, data={"csv": str(csv), "max_duration": 1.0})
    monkeypatch.chdir(tmp_path)
    prepare_stage.main()
    excluded, manifest = read_table("data/excluded.csv"), read_table("data/manifest.csv")
    assert len(excluded) > 0 and excluded["reason"].str.startswith("too long: ").all()
    assert excluded["reason"].str.endswith("> data.max_duration 1.0 s").all()
    assert (manifest["duration"] <= 1.0).all() and len(manifest) + len(excluded) == len(clips)


def test_extract_fails_when_too_many_clips_cannot_be_embedded(tmp_path, monkeypatch):
    clips = generated(tmp_path / "corpus", 5, 4, ["angry", "sad"])
    csv = clips_csv(tmp_path, clips)
    write_params(tmp_path, data={"csv": str(csv)}, features={"max_failed_fraction": 0.1})
    monkeypatch.chdir(tmp_path)
    prepare_stage.main()
    for path in np.array([p for p, _, _ in clips])[:8]:  # 8 of 40 clips break after prepare read them
        Path(path).write_bytes(b"RIFF broken")
    with pytest.raises(FeatureError, match=r"8 of 40 clips failed, more than features.max_failed_fraction allows \(4\)"
                       ) as err:
        extract_stage.main()
    assert "First reasons" in str(err.value)
    assert not Path("embeddings/features.npz").exists()


@pytest.mark.parametrize("corpus, name", [("tess", "{speaker}_{word}_{label}.wav"),
                                          ("savee", "{speaker}_{code}{k:02d}.wav")])
def test_few_speaker_corpora_in_their_published_layout_plan_leave_one_speaker_out(tmp_path, monkeypatch, corpus, name):
    """TESS (2 speakers) and SAVEE (4) with the defaults and data.dir alone."""
    speakers = {"tess": ["OAF", "YAF"], "savee": ["DC", "JE", "JK", "KL"]}[corpus]
    codes = {"angry": "a", "happy": "h", "sad": "sa", "neutral": "n"}
    root = tmp_path / "raw"
    for path, speaker, label in generated(tmp_path / "gen", len(speakers), 3, list(codes)):
        k = int(path.stem.rsplit("_", 1)[1])
        who = speakers[int(speaker.removeprefix("spk"))]
        target = root / name.format(speaker=who, word=f"word{k}", label=label, code=codes[label], k=k + 1)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
    shutil.copy(target, root / "notes_take2.wav")  # misnamed: the scan skips it, and says so in the report
    write_params(tmp_path, dataset=corpus, data={"dir": str(root)})
    monkeypatch.chdir(tmp_path)
    prepare_stage.main()
    prepared = read_json("data/prepare.json")
    excluded = read_table("data/excluded.csv")
    assert excluded[["step", "clip_id"]].values.tolist() == [["scan", "notes_take2"]]
    assert excluded["reason"].iloc[0].startswith(f"not named like a {corpus.upper()} clip")
    assert prepared["excluded"] == 1 and prepared["excluded_by_step"] == {"scan": 1}
    assert prepared["speakers"] == len(speakers) and prepared["cv"]["folds"] == len(speakers)
    assert prepared["cv"]["protocol"].startswith("leave-one-speaker-out CV")


def test_a_corpus_whose_speakers_each_recorded_one_class_plans_honest_folds_and_says_why(tmp_path, monkeypatch):
    """URDU's shape in its published layout: most speakers occur in one emotion only."""
    folders = {"angry": "Angry", "happy": "Happy", "neutral": "Neutral", "sad": "Sad"}
    root = tmp_path / "raw"
    for path, speaker, label in generated(tmp_path / "gen", 3, 4, list(folders)):
        k = int(path.stem.rsplit("_", 1)[1])
        # three voices per class, each heard in that class only
        who = f"SM{list(folders).index(label) * 3 + int(speaker.removeprefix('spk')) + 1}"
        target = root / folders[label] / f"{who}_F{k + 1}_{label[0].upper()}{k + 1:02d}.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
    write_params(tmp_path, dataset="urdu", data={"dir": str(root)})
    monkeypatch.chdir(tmp_path)
    prepare_stage.main()
    prepared = read_json("data/prepare.json")
    assert prepared["speakers"] == 12 and prepared["cv"]["protocol"].startswith("5-fold speaker-independent")
    assert any(note.startswith("12 of 12 speakers recorded one class only") and
               "(angry 3, happy 3, neutral 3, sad 3 speakers)" in note for note in prepared["cv"]["notes"])


@pytest.mark.timeout(300)
def test_pooled_corpora_with_leave_one_corpus_out(tmp_path, monkeypatch):
    """dataset: multi pools two corpora (each a folder CSV here); speaker ids are made unique per corpus; with
    cv.group_by: corpus each fold tests one corpus the model never heard, named so in cv.json and metrics.json."""
    entries = []
    for name, seed in (("alpha", 0), ("beta", 1)):
        clips = generated(tmp_path / name, 3, 4, ["angry", "happy", "sad"], seed=seed)  # both call speakers spk00..
        entries.append({"name": name, "dataset": "folder", "csv": str(clips_csv(tmp_path / name, clips))})
    write_params(tmp_path, dataset="multi", multi={"corpora": entries}, cv={"group_by": "corpus"})
    runs = run_all(tmp_path, monkeypatch, ["svm"])
    manifest = read_table("data/manifest.csv")
    assert sorted(manifest["corpus"].unique()) == ["alpha", "beta"] and manifest["speaker"].nunique() == 6
    assert manifest["clip_id"].str.startswith(("alpha/", "beta/")).all()
    assert set(manifest["speaker"]) == {f"{c}/spk0{i}" for c in ("alpha", "beta") for i in range(3)}
    cv, metrics = runs["svm"]["cv"], runs["svm"]["metrics"]
    assert cv["protocol"].startswith("leave-one-corpus-out CV (2 folds")
    assert [f["held_out"] for f in cv["folds"]] == ["alpha", "beta"]
    assert metrics["context"]["protocol"] == "leave-one-corpus-out CV"
    assert set(metrics["per_corpus"]) == {"alpha", "beta"}
    assert metrics["per_corpus"]["alpha"]["uar"] == pytest.approx(cv["folds"][0]["uar"], abs=1e-4)


def test_pooled_corpora_are_checked_in_prepare(tmp_path, monkeypatch):
    clips = generated(tmp_path / "one", 3, 2, ["angry", "sad"])
    only = {"name": "one", "dataset": "folder", "csv": str(clips_csv(tmp_path / "one", clips))}
    write_params(tmp_path, dataset="multi", multi={"corpora": [only]})
    with pytest.raises(ConfigError, match="dataset multi pools two or more corpora"):
        monkeypatch.chdir(tmp_path)
        prepare_stage.main()
    write_params(tmp_path, data={"csv": only["csv"]}, cv={"group_by": "corpus"})
    with pytest.raises(ConfigError, match="cv.group_by: corpus .* needs dataset: multi"):
        prepare_stage.main()
    other = generated(tmp_path / "two", 3, 2, ["angry", "sad", "calm"], seed=3)  # calm: only in this corpus
    two = {"name": "two", "dataset": "folder", "csv": str(clips_csv(tmp_path / "two", other))}
    write_params(tmp_path, dataset="multi", multi={"corpora": [only, two]}, cv={"group_by": "corpus"})
    message = prepare_error(tmp_path, monkeypatch)
    assert "'calm'" in message and "only two has it" in message and "data.labels" in message
