"""stages.predict: train on some synthetic speakers, predict the others' files through the CLI code path."""

import json
import logging
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from trained_fixtures import train_models

from ser import features
from ser.config import Params
from ser.corpora import synthetic
from ser.corpora.audio import load
from ser.evaluation.bootstrap import no_interval
from ser.inference.predict import Predictor
from ser.inference.segment import training_window
from ser.models import classifiers, model_card
from ser.models.calibration import apply_temperature, calibrate_oof
from stages.predict import main as predict_cli

SR = 16000
CLASSES = ["angry", "happy", "neutral", "sad"]
TEST_SPEAKERS = ["spk06", "spk07"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A models/ folder made by the library's training function on six synthetic speakers; its
    cross-validated accuracy, and two held-out speakers' files."""
    tmp = tmp_path_factory.mktemp("predict")
    synthetic.generate(tmp / "corpus", speakers=8, clips=5, classes=CLASSES, duration=1.2, seed=0)
    clips = synthetic.scan(tmp / "corpus", Params())
    params = Params.model_validate({"dataset": "synthetic", "features": {"extractor": "mfcc"},
                                    "augment": {"n_augmentations": 0}})
    test = clips["speaker"].isin(TEST_SPEAKERS).to_numpy()
    fit, _ = train_models(tmp, clips[~test].reset_index(drop=True), params)
    models = tmp / "models"
    card = model_card.read(models)
    test_dir = tmp / "heldout"
    test_dir.mkdir()
    for p in clips.loc[test, "path"]:
        shutil.copy(p, test_dir)
    test_clips = clips[test].reset_index(drop=True)
    X_test = features.build(params).transform([load(p, SR) for p in test_clips["path"]])
    return SimpleNamespace(tmp=tmp, models=models, labels=card.labels, model=classifiers.get("svm").load(models),
                           X_test=X_test, test_clips=test_clips, test_dir=test_dir,
                           cv_accuracy=float((fit.oof["actual"] == fit.oof["predicted"]).mean()), oof=fit.oof,
                           temperature=card.calibration.temperature, window=card.windows.max_clip_seconds)


def test_the_model_card_is_what_training_wrote(trained):
    """One card with every part, written by ser.models.train.train: windows from the training clips'
    durations, the temperature fit on the out-of-fold predictions."""
    card = model_card.read(trained.models)
    clips = synthetic.scan(trained.tmp / "corpus", Params())
    durations = [sf.info(p).duration for p in clips.loc[~clips["speaker"].isin(TEST_SPEAKERS), "path"]]
    assert card.windows.max_clip_seconds == training_window(durations)
    assert card.labels == sorted(CLASSES) and card.classifier == "svm" and card.trained_on.clips == len(durations)
    assert card.identity == features.build(Params.model_validate({"features": {"extractor": "mfcc"}})).identity()
    chosen = calibrate_oof(trained.oof, card.labels)
    assert card.calibration.method == chosen["method"] and card.calibration.temperature == chosen["temperature"]
    assert card.calibration.n == len(durations) and card.calibration.candidate.temperature != 1.0
    assert sorted(p.name for p in trained.models.iterdir()) == ["model.json", "novelty.npz", "svm.skops"]
    assert card.novelty.method == "mahalanobis" and card.novelty.false_rejection_target == 0.05


def run(args, tmp_path, out="out.csv"):
    """The CLI in-process: (exit code, output file contents)."""
    path = tmp_path / out
    code = predict_cli([*map(str, args), "--output", str(path), "--quiet"])
    if not path.exists():
        return code, None
    return code, (json.loads(path.read_text()) if out.endswith(".json") else pd.read_csv(path, keep_default_na=False))


def test_round_trip_reproduces_cv_accuracy(trained, tmp_path, capsys):
    code, out = run([trained.test_dir, "--models", trained.models], tmp_path)
    assert code == 0
    assert " s audio" in capsys.readouterr().err  # the progress bar counts audio seconds
    assert not (tmp_path / "out.csv.partial.csv").exists()  # the rows written as files finished: gone when done
    assert list(out.columns) == ["path", "segment", "start", "end", "predicted", "closest", "confidence", "margin",
                                 "entropy", "novelty", "speech", *[f"p_{lab}" for lab in trained.labels], "error"]
    assert ((out["speech"] >= 0) & (out["speech"] <= 1)).all()  # Silero's highest frame speech probability
    assert len(out) == len(trained.test_clips) and (out["segment"] == "all").all() and (out["error"] == "").all()
    out["clip_id"] = out["path"].map(lambda p: Path(p).stem)
    out = out.set_index("clip_id").loc[trained.test_clips["clip_id"]]

    # features exactly as in training: the CLI's probabilities are the model's on extract-stage vectors
    expected = apply_temperature(trained.model.predict_proba(trained.X_test), trained.temperature)
    got = out[[f"p_{lab}" for lab in trained.labels]].to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert np.allclose(out["confidence"], got.max(1), atol=1e-4)

    top = np.sort(got, axis=1)
    np.testing.assert_allclose(out["margin"], top[:, -1] - top[:, -2], atol=2e-4)
    assert ((out["entropy"] >= 0) & (out["entropy"] <= 1)).all()
    accuracy = float((out["closest"].to_numpy() == trained.test_clips["label"].to_numpy()).mean())
    assert accuracy > 0.5, accuracy  # 4 classes: chance is 0.25
    assert abs(accuracy - trained.cv_accuracy) <= 0.2, (accuracy, trained.cv_accuracy)


def test_unfamiliar_input_is_unknown_and_new_speakers_mostly_are_not(trained, tmp_path):
    """Non-speech (noise, a chord, clicks) scores above the novelty threshold and is labelled unknown, with its
    probabilities still given; held-out speakers of the training corpus mostly stay below it."""
    rng = np.random.default_rng(1)
    t = np.arange(int(1.2 * SR)) / SR
    odd = tmp_path / "odd"
    odd.mkdir()
    clicks = np.zeros_like(t)
    clicks[::1600] = 0.9
    for name, wave in {"white": 0.3 * rng.standard_normal(len(t)),
                       "chord": sum(0.2 * np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)),
                       "clicks": clicks}.items():
        sf.write(odd / f"{name}.wav", wave.astype(np.float32), SR)
    code, out = run([odd, "--models", trained.models], tmp_path, "odd.csv")
    assert code == 0 and (out["predicted"] == "unknown").all(), out[["path", "novelty", "predicted"]]
    assert np.allclose(out[[f"p_{lab}" for lab in trained.labels]].sum(axis=1), 1, atol=1e-3)
    assert set(out["closest"]) <= set(trained.labels)
    _, speech = run([trained.test_dir, "--models", trained.models], tmp_path)
    threshold = model_card.read(trained.models).novelty.threshold
    assert (speech["novelty"] > threshold).mean() <= 0.25 and out["novelty"].min() > speech["novelty"].max()


def test_test_time_augmentation_averages_each_file_with_its_augmented_copies(trained, tmp_path):
    from ser.config import AugmentParams
    from ser.features.augment import Augmenter

    paths = [str(p) for p in sorted(trained.test_dir.glob("*.wav"))[:4]]
    code, out = run([*paths, "--models", trained.models, "--tta", "2"], tmp_path)
    assert code == 0
    augmenter = Augmenter(AugmentParams(), 0, SR)  # the training run's augment settings and seed
    extractor = features.build(Params.model_validate({"features": {"extractor": "mfcc"}}))
    for path, got in zip(paths, out[[f"p_{lab}" for lab in trained.labels]].to_numpy()):
        wave = load(path, SR)
        waves = [wave, *(augmenter(wave, f"{path}#0", j) for j in (1, 2))]
        expected = apply_temperature(trained.model.predict_proba(extractor.transform(waves)), trained.temperature)
        np.testing.assert_allclose(got, expected.mean(0), atol=1e-4)
    _, plain = run([*paths, "--models", trained.models], tmp_path)
    assert not np.allclose(plain[[f"p_{lab}" for lab in trained.labels]].to_numpy(),
                           out[[f"p_{lab}" for lab in trained.labels]].to_numpy())


def test_a_cross_corpus_test_scores_the_shared_classes_and_counts_the_rest(trained, tmp_path):
    """Another corpus (a folder CSV): the held-out speakers' clips plus clips of a class the model never learned;
    the unknown class is left out and counted, the rest scored with the final model."""
    from ser.evaluation.cross_corpus import evaluate_corpus
    from ser.evaluation.cross_params import CrossCorpus

    synthetic.generate(tmp_path / "other", speakers=2, clips=3, classes=["surprised"], duration=1.2, seed=5)
    other = synthetic.scan(tmp_path / "other", Params())
    table = pd.concat([trained.test_clips[["path", "label", "speaker"]], other[["path", "label", "speaker"]]])
    table.to_csv(tmp_path / "corpus.csv", index=False)
    params = Params.model_validate({"dataset": "synthetic", "features": {"extractor": "mfcc"}})
    spec = CrossCorpus(name="other", dataset="folder", csv=str(tmp_path / "corpus.csv"))
    block, clips = evaluate_corpus(params, spec, trained.models)
    assert block["left_out_classes"] == "surprised" and block["left_out_clips"] == len(other)
    assert block["clips"] == len(trained.test_clips) == len(clips) and block["classes"] == 4
    assert block["over"] == "speakers" and block["protocol"].startswith("the final model (trained on all of synthetic)")
    expected = float((clips["actual"] == clips["predicted"]).mean())
    assert block["accuracy"] == pytest.approx(expected, abs=1e-4) and block["accuracy"] > 0.5
    assert block["uar_ci95"] == no_interval(block["speakers"])  # too few speakers for an interval
    assert block["most_predicted_share"] == pytest.approx(clips["predicted"].value_counts(normalize=True).max(), 1e-3)
    assert (clips["error"] == "").all() and block["failed_clips"] == 0

    # the common-label option: two classes scored, each clip predicted among them
    two = CrossCorpus(name="two", dataset="folder", csv=str(tmp_path / "corpus.csv"), labels=["angry", "sad"])
    block, clips = evaluate_corpus(params, two, trained.models)
    assert block["scored_classes"] == "angry, sad" and set(clips["predicted"]) <= {"angry", "sad"}
    assert block["left_out_classes"] == "happy, neutral, surprised" and block["chance_uar"] == 0.5

    # the training run's label_map merges the test corpus' labels too: its surprised clips are scored as happy
    merged = params.model_copy(update={"data": params.data.model_copy(update={"label_map": {"surprised": "happy"}})})
    block, clips = evaluate_corpus(merged, spec, trained.models)
    assert block["left_out_clips"] == 0 and block["clips"] == len(trained.test_clips) + len(other)

    other[["path", "label", "speaker"]].to_csv(tmp_path / "none.csv", index=False)
    with pytest.raises(ValueError, match=r"0 class\(es\) shared \(none\).*model knows angry, happy, neutral, sad; "
                                         r"the corpus has surprised"):
        evaluate_corpus(params, CrossCorpus(name="x", dataset="folder", csv=str(tmp_path / "none.csv")), trained.models)
    with pytest.raises(ValueError, match=r"labels \['calm'\] are not classes of the model"):
        evaluate_corpus(params, CrossCorpus(name="x", dataset="folder", csv=str(tmp_path / "corpus.csv"),
                                            labels=["calm", "sad"]), trained.models)


def test_a_cross_corpus_test_of_the_training_audio_is_refused(trained, tmp_path):
    from trained_fixtures import manifest

    from ser.evaluation.cross_corpus import evaluate_corpus
    from ser.evaluation.cross_params import CrossCorpus

    trained.test_clips[["path", "label", "speaker"]].to_csv(tmp_path / "corpus.csv", index=False)
    params = Params.model_validate({"dataset": "synthetic", "features": {"extractor": "mfcc"}})
    training = manifest(trained.test_clips.iloc[:2])  # as if two of them had been training clips
    with pytest.raises(ValueError, match=r"2 of its \d+ clips hold audio of the training corpus"):
        evaluate_corpus(params, CrossCorpus(name="same", dataset="folder", csv=str(tmp_path / "corpus.csv")),
                        trained.models, training)


def test_cross_corpus_failures_are_listed_and_bounded(trained, tmp_path):
    """A clip that breaks after prepare read it is reported with its reason; more than
    features.max_failed_fraction of them stop the test (a broken model or reader, not a few clips)."""
    from ser.errors import FeatureError
    from ser.evaluation.cross_corpus import evaluate_corpus
    from ser.evaluation.cross_params import CrossCorpus

    copies = []
    for p in trained.test_clips["path"]:
        copies.append(shutil.copy(p, tmp_path / Path(p).name))
    table = trained.test_clips[["label", "speaker"]].assign(path=copies)
    table.to_csv(tmp_path / "corpus.csv", index=False)
    spec = CrossCorpus(name="broken", dataset="folder", csv=str(tmp_path / "corpus.csv"))
    params = Params.model_validate({"dataset": "synthetic",
                                    "features": {"extractor": "mfcc", "max_failed_fraction": 0.1}})

    import ser.corpora.manifest as manifest_module
    real = manifest_module.build_manifest

    def breaking(count: int):
        """build_manifest, then the first ``count`` files break (after prepare read them, as a disk error would)."""
        def build(params):
            out = real(params)
            for path in out[0]["path"][:count]:
                Path(path).write_bytes(b"RIFF broken")
            return out
        return build

    with mock.patch.object(manifest_module, "build_manifest", breaking(1)):
        block, clips = evaluate_corpus(params, spec, trained.models)
    assert block["failed_clips"] == 1 and (clips["error"] != "").sum() == 1
    assert block["clips"] == len(copies) - 1
    for p, original in zip(copies, trained.test_clips["path"]):
        shutil.copy(original, p)
    with mock.patch.object(manifest_module, "build_manifest", breaking(5)), \
            pytest.raises(FeatureError, match=r"5 of 40 clips failed, more than features.max_failed_fraction"):
        evaluate_corpus(params, spec, trained.models)  # 4 of 40 allowed


def long_recording(trained, path: Path, clips: int = 8, pause: float = 1.2) -> tuple[list, list[str]]:
    """Held-out clips with pauses between them (~20 s; every other pause digital silence); returns
    each clip's span and path."""
    rng = np.random.default_rng(0)
    parts, spans, t = [], [], 0.0
    paths = list(trained.test_clips["path"][:: len(trained.test_clips) // clips][:clips])
    for i, p in enumerate(paths):
        wave = load(p, SR)
        parts += [wave, (0.0005 * (i % 2) * rng.standard_normal(int(pause * SR))).astype(np.float32)]
        spans.append((t, t + len(wave) / SR))
        t += (len(wave) + int(pause * SR)) / SR
    sf.write(path, np.concatenate(parts), SR)
    return spans, paths


def test_long_recording_is_segmented(trained, tmp_path):
    spans, paths = long_recording(trained, tmp_path / "long.wav")
    code, out = run([tmp_path / "long.wav", "--models", trained.models], tmp_path, "out.json")
    assert code == 0
    (record,) = out["files"]
    assert 18 < record["duration"] < 24
    segments = record["segments"]
    assert len(segments) >= len(spans)  # at least one window per spoken clip, none past a pause's middle
    for s in segments:
        assert 0 <= s["start"] < s["end"] <= record["duration"]
        assert s["end"] - s["start"] <= trained.window + 1e-3
        assert any(a - 0.62 <= s["start"] and s["end"] <= b + 0.62 for a, b in spans), (s, spans)  # pause: 1.2 s
    assert all(a["end"] <= b["start"] for a, b in zip(segments, segments[1:]))
    # a window over a clip predicts (nearly always) what the clip alone does
    alone = {p: r.proba.argmax() for p, r in zip(paths, Predictor.load(trained.models).predict(paths))}
    clip_of = [next(p for (a, b), p in zip(spans, paths) if a - 0.62 <= s["start"] and s["end"] <= b + 0.62)
               for s in segments]
    agree = [s["closest"] == trained.labels[alone[p]] for s, p in zip(segments, clip_of)]
    assert np.mean(agree) >= 0.75, agree
    # the summary is the duration-weighted mean of the segments
    weights = np.array([s["end"] - s["start"] for s in segments])
    mean = {lab: np.average([s["probabilities"][lab] for s in segments], weights=weights) for lab in trained.labels}
    assert record["probabilities"] == pytest.approx(mean, abs=2e-3)
    assert record["closest"] == max(mean, key=mean.get)

    code, csv = run([tmp_path / "long.wav", "--models", trained.models], tmp_path)  # CSV: summary + segment rows
    assert list(csv["segment"]) == ["all", *map(str, range(1, len(segments) + 1))]

    code, whole = run([tmp_path / "long.wav", "--models", trained.models, "--segment-seconds", "30"], tmp_path)
    assert code == 0 and list(whole["segment"]) == ["all"] and whole["end"][0] == pytest.approx(record["duration"])


def test_bad_inputs_are_reported_and_the_rest_predicted(trained, tmp_path):
    folder = tmp_path / "mixed"
    (folder / "nested").mkdir(parents=True)
    good = [shutil.copy(p, folder / "nested") for p in trained.test_clips["path"][:3]]
    (folder / "notes.wav").write_text("this is text, not audio\n")
    (folder / "empty.wav").write_bytes(b"")
    (folder / "readme.txt").write_text("not picked up: not an audio extension")
    sf.write(folder / "short.wav", np.full(int(0.05 * SR), 0.3, np.float32), SR)
    sf.write(folder / "silent.wav", np.zeros(2 * SR, np.float32), SR)
    code, out = run([folder, tmp_path / "missing.wav", "--models", trained.models], tmp_path)
    assert code == 1
    errors = dict(zip(out["path"].map(lambda p: Path(p).name), out["error"]))
    assert errors.pop("missing.wav") == "not found"
    assert errors.pop("notes.wav").startswith("not decodable audio")
    assert errors.pop("empty.wav") == "empty file"
    assert errors.pop("short.wav").startswith("too short: 0.05 s")
    assert errors.pop("silent.wav").startswith("silent")
    assert sorted(errors) == sorted(Path(p).name for p in good) and set(errors.values()) == {""}
    predicted = out[out["error"] == ""]
    assert predicted["closest"].isin(trained.labels).all() and (predicted["confidence"] != "").all()
    failed = out[out["error"] != ""]
    assert (failed["predicted"] == "").all() and "readme.txt" not in " ".join(out["path"])


def edited_models(trained, tmp_path, **changes):
    folder = tmp_path / "models"
    shutil.copytree(trained.models, folder)
    card = json.loads((folder / "model.json").read_text())
    for key, value in changes.items():
        if value is None:
            card.pop(key)
        else:
            card[key] = value(card) if callable(value) else value
    (folder / "model.json").write_text(json.dumps(card))
    return folder


@pytest.mark.parametrize("change, message", [
    ({"identity": lambda m: {**m["identity"], "n_mfcc": 20}}, "n_mfcc: trained 20, rebuilt 40"),
    ({"feature_params": lambda m: {**m["feature_params"], "features": {"extractor": "mfcc", "mfcc": {"n_mfcc": 20}}}},
     "n_mfcc: trained 40, rebuilt 20"),
    ({"identity": lambda m: {**m["identity"], "sample_rate": 8000}}, "sample_rate: trained 8000, rebuilt 16000"),
    ({"identity": lambda m: {**m["identity"], "features_version": 0}}, "features_version: trained 0, rebuilt"),
    ({"identity": lambda m: {**m["identity"], "libraries": {**m["identity"]["libraries"], "librosa": "0.1"}}},
     "libraries: trained {"),
    ({"dim": 80}, "80"),
    ({"feature_params": None}, "feature_params"),
    ({"card_version": None}, "format before versions"),
    ({"calibration": lambda m: {**m["calibration"], "temperature": -1}}, "temperature"),
])
def test_mismatched_or_invalid_cards_are_refused(trained, tmp_path, caplog, change, message):
    folder = edited_models(trained, tmp_path, **change)
    code, out = run([trained.test_dir, "--models", folder], tmp_path)
    assert code == 2 and out is None
    assert message in caplog.text
    assert "retrain" in caplog.text.lower()


def test_model_folder_errors(trained, tmp_path, caplog):
    code, _ = run([trained.test_dir, "--models", tmp_path / "nowhere"], tmp_path)
    assert code == 2 and "not found" in caplog.text
    folder = tmp_path / "m"
    shutil.copytree(trained.models, folder)
    (folder / "model.json").write_text("{ not json")
    code, _ = run([trained.test_dir, "--models", folder], tmp_path)
    assert code == 2 and "is not valid JSON" in caplog.text and "retrain" in caplog.text
    shutil.copy(trained.models / "model.json", folder)
    (folder / "svm.skops").unlink()
    code, _ = run([trained.test_dir, "--models", folder], tmp_path)
    assert code == 2 and "cannot load the svm model" in caplog.text


def test_crafted_skops_file_is_refused(trained, tmp_path, caplog):
    """An svm.skops whose schema makes skops call numpy.save on load is refused before loading."""
    folder = tmp_path / "models"
    shutil.copytree(trained.models, folder)
    marker = tmp_path / "written.npy"
    with zipfile.ZipFile(trained.models / "svm.skops") as src:
        files = {name: src.read(name) for name in src.namelist()}
    schema = json.loads(files["schema.json"])

    def js(value):
        return {"__class__": type(value).__name__, "__module__": "builtins", "__loader__": "JsonNode",
                "content": json.dumps(value), "is_json": True}

    state = schema["content"]  # the Pipeline's attribute dict
    state["content"]["extra"] = {"__class__": "save", "__module__": "numpy", "__loader__": "ConstructorFromReduceNode",
                                 "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                                             "content": [js(str(marker)), js([1, 2, 3])]}}
    state["key_types"]["content"].append(state["key_types"]["content"][0])
    files["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(folder / "svm.skops", "w") as out:
        for name, blob in files.items():
            out.writestr(name, blob)
    code, _ = run([trained.test_dir, "--models", folder], tmp_path)
    assert code == 2 and "numpy.save" in caplog.text and "refusing to load" in caplog.text
    assert not marker.exists()


def test_batches_do_not_change_predictions(trained):
    """Tiny batches, one reader thread: the same probabilities as one big batch."""
    files = sorted(trained.test_dir.glob("*.wav"))[:12]
    big = [r.proba for r in Predictor.load(trained.models).predict(files)]
    small = [r.proba for r in Predictor.load(trained.models, batch_seconds=2.0, workers=1).predict(files)]
    np.testing.assert_allclose(np.stack(big), np.stack(small), atol=1e-6)


def test_windows_cut_long_speech_and_widen_short_bursts():
    from ser.inference.segment import windows

    rng = np.random.default_rng(0)
    wave = 0.0005 * rng.standard_normal(12 * SR).astype(np.float32)
    wave[1 * SR:8 * SR] += 0.3 * np.sin(2 * np.pi * 200 * np.arange(7 * SR) / SR)  # 7 s without a pause
    wave[10 * SR:int(10.1 * SR)] += 0.3  # a 0.1 s burst
    spans = windows(wave, SR, max_seconds=3.0, min_seconds=0.25, target_seconds=2.0)
    lengths = [(e - s) / SR for s, e in spans]
    assert len(spans) == 4 and all(n <= 3.0 for n in lengths), spans  # 7 s -> 3 pieces, + the burst
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans  # no overlap
    assert spans[0][0] <= 1 * SR and spans[2][1] >= 8 * SR - SR // 10  # the speech is covered
    # the burst gets the pause around it, as training clips have, up to the middle of the pause before it
    assert 9 * SR - SR // 10 <= spans[3][0] < 10 * SR and int(10.1 * SR) < spans[3][1] and 1.9 < lengths[3] <= 2.0
    burst = windows(wave, SR, max_seconds=3.0, min_seconds=1.0, target_seconds=0.1)[-1]  # widened to the minimum
    assert burst[1] - burst[0] == SR and burst[0] < 10 * SR < int(10.1 * SR) < burst[1]
    assert windows(wave[:2 * SR], SR, max_seconds=3.0) == [(0, 2 * SR)]  # fits: kept whole, as in training

    digital = wave.copy()
    digital[:1 * SR] = digital[8 * SR:10 * SR] = 0.0  # exact zeros around the speech
    spans = windows(digital, SR, max_seconds=3.0)
    assert spans[0][0] == 1 * SR and spans[2][1] == 8 * SR  # context stops where the digital silence starts


def test_windows_share_the_pause_between_utterances():
    """Two 1 s utterances 2 s apart, training clips ~3 s: each window takes its half of the pause."""
    from ser.inference.segment import windows

    rng = np.random.default_rng(1)
    wave = 0.0005 * rng.standard_normal(10 * SR).astype(np.float32)
    for start in (2, 5):
        wave[start * SR:(start + 1) * SR] += 0.3 * np.sin(2 * np.pi * 180 * np.arange(SR) / SR)
    (a0, a1), (b0, b1) = windows(wave, SR, max_seconds=4.0, target_seconds=3.0)
    assert abs(a1 - 4 * SR) < SR // 10 and abs(b0 - 4 * SR) < SR // 10  # they meet in the middle of the pause
    assert abs(a0 - 1 * SR) < SR // 10  # stopped on the right, the first takes its missing second from the left
    assert abs((a1 - a0) - 3 * SR) < SR // 20 and abs((b1 - b0) - 3 * SR) < SR // 20  # both ~ a training clip


def test_windows_from_blocks_are_those_of_the_whole_wave():
    """Frame loudness fed in blocks equals librosa's on the whole, the voiced parts librosa's split,
    and the windows cut from blocks are those (and the samples) of the wave in memory."""
    import librosa

    from ser.inference.segment import Loudness, cut, loud_parts, plan, voiced, windows

    rng = np.random.default_rng(2)
    for sr in [16000, 22050, 8000]:
        n = int(rng.uniform(30, 50) * sr)
        wave = (0.001 * rng.standard_normal(n)).astype(np.float32)
        for _ in range(10):
            a = rng.integers(0, n)
            b = min(n, a + int(rng.uniform(0.05, 7) * sr))
            wave[a:b] += rng.uniform(0.02, 0.5) * np.sin(np.arange(b - a) * rng.uniform(0.02, 0.2))
        wave[n // 3: n // 3 + sr] = 0.0  # digital silence
        size = int(rng.uniform(0.4, 4) * sr)
        parts = [wave[i:i + size] for i in range(0, n, size)]
        loudness = Loudness(sr)
        for part in parts:
            loudness.add(part)
        rms = loudness.finish()
        np.testing.assert_array_equal(rms, librosa.feature.rms(y=wave, frame_length=loudness.frame,
                                                               hop_length=loudness.hop)[0])
        split = librosa.effects.split(wave, top_db=30, frame_length=loudness.frame, hop_length=loudness.hop)
        assert voiced(rms, n, loudness.hop, 30) == split.tolist()
        spans = plan(loud_parts(rms, n, sr, 30), n, sr, 3.0, target_seconds=2.0)
        streamed = list(cut(parts, spans, n, int(0.8 * sr)))
        assert [s for s, _ in streamed] == windows(wave, sr, 3.0, min_seconds=0.8, target_seconds=2.0)
        assert len(streamed) > 5 and all(np.array_equal(w, wave[s:e]) for (s, e), w in streamed)


def test_long_files_are_read_in_blocks_with_the_same_results(trained, tmp_path):
    """Files longer than a block are read twice, block by block (resampled by a stream): the same
    windows and probabilities as from the whole file in memory."""
    long_recording(trained, tmp_path / "long.wav")
    wave = load(tmp_path / "long.wav", SR)
    sf.write(tmp_path / "long-24k-stereo.wav", np.stack([wave, wave], 1).repeat(3, 0)[::2] * 0.8, 24000)
    paths = [tmp_path / "long.wav", tmp_path / "long-24k-stereo.wav", trained.test_clips["path"][0]]
    whole = list(Predictor.load(trained.models, block_seconds=100.0).predict(paths))
    blocks = list(Predictor.load(trained.models, block_seconds=2.5, workers=1).predict(paths))
    assert all(r.ok for r in whole + blocks) and len(whole[0].segments) > 5
    for a, b in zip(whole, blocks):
        assert [(s.start, s.end) for s in a.segments] == [(s.start, s.end) for s in b.segments]
        np.testing.assert_array_equal(a.proba, b.proba)


def test_a_file_that_changes_between_the_two_reads_is_reported(trained, tmp_path, monkeypatch):
    from ser.features import stream

    long_recording(trained, tmp_path / "long.wav")
    reads = []
    real = stream.blocks

    def shrinking(path, *args):
        reads.append(path)
        for k, block in enumerate(real(path, *args)):
            if len(reads) > 1 and k == 2:  # the second read ends early
                return
            yield block

    monkeypatch.setattr(stream, "blocks", shrinking)
    paths = [tmp_path / "long.wav", trained.test_clips["path"][0]]
    bad, good = Predictor.load(trained.models, block_seconds=3.0, workers=1).predict(paths)
    assert bad.error.startswith("not readable a second time: the recording ended") and bad.proba is None
    assert good.ok


def test_memory_is_bounded_by_blocks_not_by_file_length(trained, tmp_path):
    """Three 1-minute files, then three 4-minute ones (15 MB of float32 samples each): the memory
    held at once hardly changes and stays far below one file: blocks and batches are in flight."""
    import tracemalloc

    long_recording(trained, tmp_path / "long.wav")
    wave = load(tmp_path / "long.wav", SR)
    predictor = Predictor.load(trained.models, block_seconds=2.5, batch_seconds=2.5, workers=2)
    list(predictor.predict([tmp_path / "long.wav"]))  # lazy imports and caches, outside the measurement
    peaks = {}
    for minutes in (1, 4):
        samples = np.tile(wave, int(np.ceil(minutes * 60 * SR / len(wave))))[:minutes * 60 * SR]
        paths = [tmp_path / f"{minutes}min-{k}.wav" for k in range(3)]
        for k, path in enumerate(paths):
            sf.write(path, np.roll(samples, k * SR), SR)
        tracemalloc.start()
        try:
            results = list(predictor.predict(paths))
            peaks[minutes] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert all(r.ok and r.duration == minutes * 60 for r in results)
    # holding whole files would add 3 x 11.5 MB from 1 to 4 minutes; what varies is threads' timing
    assert peaks[4] < samples.nbytes / 2 and peaks[4] - peaks[1] < samples.nbytes / 4, (peaks, samples.nbytes)


@pytest.fixture(scope="module")
def wavlm_models(trained, tmp_path_factory):
    """A model trained on a tiny saved WavLM's features (through ser.models.train.train), whose encoder
    folder then moves: (models folder, old encoder folder, new encoder folder)."""
    from model_fixtures import tiny_wavlm

    tmp = tmp_path_factory.mktemp("moved")
    encoder = tiny_wavlm(tmp / "encoder")
    clips = synthetic.scan(trained.tmp / "corpus", Params())
    params = Params.model_validate({"dataset": "synthetic", "augment": {"n_augmentations": 0},
                                    "features": {"extractor": "ssl", "model": str(encoder), "device": "cpu"}})
    train_models(tmp, clips[~clips["speaker"].isin(TEST_SPEAKERS)].reset_index(drop=True), params)
    return tmp / "models", encoder, tmp / "moved-encoder"


def test_a_moved_encoder_is_named_and_given_with_encoder(wavlm_models, trained, tmp_path, caplog):
    models, encoder, moved = wavlm_models
    files = sorted(trained.test_dir.glob("*.wav"))[:4]
    before = [r.proba for r in Predictor.load(models).predict(files)]
    shutil.move(encoder, moved)
    try:
        code, out = run([*files, "--models", models], tmp_path)
        assert code == 2 and out is None
        assert str(encoder) in caplog.text and "--encoder PATH" in caplog.text
        code, out = run([*files, "--models", models, "--encoder", moved], tmp_path)
        assert code == 0
        got = out[[f"p_{lab}" for lab in trained.labels]].to_numpy()
        np.testing.assert_allclose(got, np.stack(before), atol=1e-4)  # the CSV rounds to 4 decimals
        np.testing.assert_array_equal(np.stack([r.proba for r in Predictor.load(models, encoder=str(moved))
                                                .predict(files)]), np.stack(before))
    finally:
        shutil.move(moved, encoder)


def test_other_weights_given_with_encoder_are_refused(wavlm_models, trained, tmp_path, caplog):
    from model_fixtures import tiny_wavlm

    models, _, _ = wavlm_models
    other = tiny_wavlm(tmp_path / "other", seed=1)
    code, out = run([trained.test_dir, "--models", models, "--encoder", other], tmp_path)
    assert code == 2 and out is None
    assert "weights: trained 'sha1:" in caplog.text and "refusing to predict" in caplog.text


def test_a_card_from_a_cuda_run_predicts_on_the_cpu(wavlm_models, trained, tmp_path, caplog):
    """features.device: cuda in training (fp16 there) is no part of the identity: on a machine without
    CUDA the error names --device, and --device cpu predicts with the same identity check passing."""
    import torch

    models, _, _ = wavlm_models
    folder = shutil.copytree(models, tmp_path / "models")
    card = json.loads((folder / "model.json").read_text())
    card["feature_params"]["features"]["device"] = "cuda"
    (folder / "model.json").write_text(json.dumps(card))
    if not torch.cuda.is_available():
        code, _ = run([trained.test_dir, "--models", folder], tmp_path)
        assert code == 2 and "--device" in caplog.text
    code, out = run([trained.test_dir, "--models", folder, "--device", "cpu"], tmp_path)
    assert code == 0 and (out["error"] == "").all()


def test_an_interrupted_batch_keeps_the_files_it_finished(trained, tmp_path, monkeypatch, caplog):
    from ser.inference.predict import Predictor

    real = Predictor.predict

    def stop_after_two(self, *args, **kwargs):
        for i, result in enumerate(real(self, *args, **kwargs)):
            if i == 2:
                raise KeyboardInterrupt
            yield result

    monkeypatch.setattr(Predictor, "predict", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        run([trained.test_dir, "--models", trained.models], tmp_path)
    kept = pd.read_csv(tmp_path / "out.csv.partial.csv")
    assert kept["path"].nunique() == 2 and not (tmp_path / "out.csv").exists()
    assert "the 2 files finished are in" in caplog.text


def test_partial_rows_go_into_an_output_folder_that_does_not_exist_yet(tmp_path):
    from ser.inference.files import FileResult
    from ser.inference.output import PartialRows

    partial = PartialRows(tmp_path / "new" / "out.csv", ["happy", "sad"])
    partial.add(FileResult("a.wav", 1.0, error="not decodable"))
    partial.close()
    assert pd.read_csv(partial.path)["path"].tolist() == ["a.wav"]


def test_the_summary_counts_unknown_segments_not_only_files(caplog):
    from types import SimpleNamespace

    from ser.inference.files import FileResult, Segment
    from stages.predict import summarise

    long = FileResult("long.wav", 60.0, segmented=True, unknown=False)
    long.segments = [Segment(0.0, 30.0, None, unknown=True), Segment(30.0, 60.0, None)]
    short = FileResult("short.wav", 2.0, unknown=True)
    with caplog.at_level(logging.INFO):
        summarise([long, short], SimpleNamespace(speech_threshold=0.5, threshold=float("inf"),
                                                 card=SimpleNamespace(novelty=SimpleNamespace(method="knn"))), 1.0)
    assert ("unknown: 1 of 2 files, 1 of 2 segments of the 1 long files (unknown when speech presence below 0.5)"
            in caplog.text)


def test_loudness_normalisation_never_gets_a_window_too_short_to_measure(trained, tmp_path):
    """A recording a little longer than the window, ending in a short burst after a short pause: its last
    window was 0.25 s, and BS.1770 loudness (0.4 s blocks) failed the whole file."""
    from ser.inference.predict import Predictor
    from ser.preprocess.params import PreprocessParams
    from ser.preprocess.pipeline import Preprocessor

    rng = np.random.default_rng(0)
    t = np.arange(int(4.9 * SR)) / SR
    speechy = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    burst = 0.3 * rng.standard_normal(int(0.1 * SR))
    wave = np.concatenate([speechy, 1e-4 * rng.standard_normal(int(0.3 * SR)), burst]).astype(np.float32)
    sf.write(tmp_path / "long.wav", wave, SR)
    predictor = Predictor.load(trained.models, segment_seconds=5.0)
    predictor.chain = Preprocessor(PreprocessParams(normalize="loudness"), SR)
    (result,) = predictor.predict([tmp_path / "long.wav"])
    assert result.ok and result.segmented, result.error
    assert min(s.end - s.start for s in result.segments) == pytest.approx(0.4)  # widened to what it needs
