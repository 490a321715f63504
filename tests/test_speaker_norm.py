"""features.normalize: speaker: per-speaker standardisation, its transductive label, and predict's speaker groups."""

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from trained_fixtures import train_models

from ser import features
from ser.config import Params
from ser.corpora import synthetic
from ser.corpora.audio import load
from ser.features.speaker_norm import by_group, standardise
from ser.models import classifiers, model_card
from stages.predict import main as predict_cli

CLASSES = ["angry", "happy", "neutral", "sad"]


def test_each_speaker_is_standardised_with_its_own_original_clips():
    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (30, 4)) + np.repeat([[0, 0, 0, 0], [5, -5, 10, 0], [1, 1, 1, 1]], 10, axis=0) * 3
    speakers = np.repeat(["a", "b", "c"], 10)
    original = np.tile([True] * 8 + [False] * 2, 3)  # two augmented copies per speaker
    out = by_group(X, speakers, original)
    for s in "abc":
        rows = (speakers == s) & original
        np.testing.assert_allclose(out[rows].mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(out[rows].std(0), 1, atol=1e-5)
    np.testing.assert_allclose(out[~original][:2], standardise(X[~original][:2], X[(speakers == "a") & original]),
                               atol=1e-6)
    with pytest.raises(ValueError, match="speaker z: .*at least 2 clips.*features.normalize: none"):
        by_group(X[:3], np.array(["a", "a", "z"]), np.ones(3, bool))


def test_frame_classifiers_refuse_speaker_normalisation():
    with pytest.raises(ValueError, match="features.normalize: none"):
        Params(classifier="attentive", features={"extractor": "mfcc", "pooling": "none", "normalize": "speaker"})


@pytest.fixture(scope="module")
def normalised(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spknorm")
    synthetic.generate(tmp / "corpus", speakers=7, clips=5, classes=CLASSES, duration=1.2, seed=0)
    clips = synthetic.scan(tmp / "corpus", Params())
    params = Params.model_validate({"dataset": "synthetic", "features": {"extractor": "mfcc", "normalize": "speaker"},
                                    "augment": {"n_augmentations": 0}})
    held = clips["speaker"] == "spk06"
    fit, _ = train_models(tmp, clips[~held].reset_index(drop=True), params)
    folder = tmp / "spk06"
    folder.mkdir()
    for p in clips.loc[held, "path"]:
        shutil.copy(p, folder)
    return tmp, fit, clips[held].reset_index(drop=True), params, folder


def test_every_number_is_labelled_transductive(normalised):
    tmp, fit, _, _, _ = normalised
    assert "transductive" in fit.summary["protocol"]
    assert "transductive" in model_card.read(tmp / "models").trained_on.protocol
    from ser.evaluation.report import short_protocol

    assert "transductive" in short_protocol(fit.summary["protocol"])


def test_predict_needs_the_speaker_and_standardises_that_speakers_files(normalised, tmp_path, caplog):
    tmp, _, held, params, folder = normalised
    models = tmp / "models"
    assert predict_cli([str(folder), "--models", str(models), "--quiet"]) == 2
    assert "--speaker NAME" in caplog.text
    out = tmp_path / "out.csv"
    assert predict_cli([str(folder), "--models", str(models), "--speaker", "new", "--output", str(out), "--quiet"]) == 0
    got = pd.read_csv(out).set_index("path").loc[[str(folder / f"{c}.wav") for c in held["clip_id"]]]
    X = features.build(params).transform([load(p, 16000) for p in held["path"]])
    model = classifiers.get("svm").load(models)
    temperature = model_card.read(models).calibration.temperature
    from ser.models.calibration import apply_temperature

    expected = apply_temperature(model.predict_proba(standardise(X, X)), temperature)
    np.testing.assert_allclose(got[[f"p_{lab}" for lab in sorted(CLASSES)]].to_numpy(), expected, atol=1e-4)

    # a CSV of speakers: two groups, one with a single file (too few for statistics: an error for it alone)
    table = pd.DataFrame({"path": [str(folder / f"{c}.wav") for c in held["clip_id"]], "speaker": "a"})
    table.loc[0, "speaker"] = "b"
    # relative paths are read from the CSV's folder (as data.csv's are), wherever predict runs
    table.assign(path=[os.path.relpath(p, tmp_path) for p in table["path"]]).to_csv(tmp_path / "speakers.csv",
                                                                                   index=False)
    out = tmp_path / "out.json"
    code = predict_cli([str(folder), "--models", str(models), "--speakers", str(tmp_path / "speakers.csv"),
                        "--output", str(out), "--quiet"])
    files = {f["path"]: f for f in json.loads(out.read_text())["files"]}
    assert code == 1 and "speaker b: speaker normalisation needs at least 2 clips" in files[table["path"][0]]["error"]
    assert all("error" not in files[p] for p in table["path"][1:])
    assert predict_cli([str(folder), "--models", str(models.parent / "missing"), "--speaker", "x", "--quiet"]) == 2


def test_corpus_normalisation_adapts_to_a_batch_of_one_recording_set_up(tmp_path, caplog):
    """features.normalize: corpus standardises the training corpus with its own statistics; predict --adapt
    standardises a batch of new recordings with theirs (at least 30), transductive and labelled so."""
    synthetic.generate(tmp_path / "corpus", speakers=8, clips=5, classes=CLASSES, duration=1.0, seed=0)
    clips = synthetic.scan(tmp_path / "corpus", Params())
    params = Params.model_validate({"dataset": "synthetic", "features": {"extractor": "mfcc", "normalize": "corpus"},
                                    "augment": {"n_augmentations": 0}})
    held = clips["speaker"].isin(["spk06", "spk07"])
    fit, _ = train_models(tmp_path, clips[~held].reset_index(drop=True), params)
    assert "standardised per corpus with the test corpus's own clips" in fit.summary["protocol"]
    from ser.evaluation.report import short_protocol

    assert short_protocol(fit.summary["protocol"]).endswith("corpus-normalised with the test corpus's clips")
    folder = tmp_path / "new"
    folder.mkdir()
    for p in clips.loc[held, "path"]:
        shutil.copy(p, folder)
    models = tmp_path / "models"
    assert predict_cli([str(folder), "--models", str(models), "--quiet"]) == 2 and "--adapt" in caplog.text
    assert predict_cli([str(folder), "--models", str(models), "--speaker", "x", "--quiet"]) == 2
    out = tmp_path / "out.csv"
    assert predict_cli([str(folder), "--models", str(models), "--adapt", "--output", str(out), "--quiet"]) == 0
    paths = [str(folder / f"{c}.wav") for c in clips.loc[held, "clip_id"]]
    got = pd.read_csv(out).set_index("path").loc[paths]
    X = features.build(params).transform([load(p, 16000) for p in clips.loc[held, "path"]])
    from ser.models.calibration import apply_temperature

    expected = apply_temperature(classifiers.get("svm").load(models).predict_proba(standardise(X, X, "corpus")),
                                 model_card.read(models).calibration.temperature)
    np.testing.assert_allclose(got[[f"p_{lab}" for lab in sorted(CLASSES)]].to_numpy(), expected, atol=1e-4)
    few = tmp_path / "few"
    few.mkdir()
    for p in paths[:5]:
        shutil.copy(p, few)
    out = tmp_path / "few.json"
    assert predict_cli([str(few), "--models", str(models), "--adapt", "--output", str(out), "--quiet"]) == 1
    assert all("corpus normalisation needs at least 30 clips of a corpus, got 5" in f["error"]
               for f in json.loads(out.read_text())["files"])
