"""The whole DVC DAG in a temporary clone of this working tree, on the synthetic corpus.

These runs take a minute or two each: they are what a user does, so they are what we test.
"""

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from shared_paths import SHARED_RAVDESS

from reproduce.workspace import CommandError, clone_worktree, run, stages_run

FAST = ["-S", "dataset=synthetic", "-S", "features.extractor=mfcc"]
RAVDESS_FAST = ["-S", "features.extractor=mfcc", "-S", "augment.n_augmentations=0"]
STAGES = ("prepare", "route", "extract", "train", "crosscorpora", "crosstest", "evaluate", "visualize")
LISTING = {"crosscorpora"}  # runs every time (always_changed): it lists the test corpora, in seconds
QUEUE_TIMEOUT = 600  # seconds for the two queued experiments to finish (1.5-4 min on 2 cores)

FINISHED = ("success", "failed", "done")  # executor states of `dvc exp show` after a run

pytestmark = pytest.mark.timeout(900)  # the first test also runs the module's `repo` fixture


@pytest.mark.timeout(30)
def test_commands_cannot_hang_the_tests(tmp_path):
    start = time.monotonic()
    out = run(tmp_path, "sh", "-c", "sleep 30 & echo $!")  # a daemon holds no pipe this process reads
    os.kill(int(out), signal.SIGKILL)
    with pytest.raises(AssertionError, match="did not finish in 1 s, killed"):
        run(tmp_path, "sh", "-c", "sleep 30; echo never", timeout=1)
    assert time.monotonic() - start < 25  # a hang guard: either sleep left running would take 30 s


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A clone that has run the whole DAG once on synthetic data."""
    dest = clone_worktree(tmp_path_factory.mktemp("clone"))
    log = run(dest, "dvc", "exp", "run", *FAST)
    assert stages_run(log) == set(STAGES), log
    return dest


@pytest.mark.slow
def test_full_run_writes_every_artifact(repo):
    metrics = json.loads((repo / "results/metrics.json").read_text())
    assert metrics["context"]["dataset"].startswith("synthetic")
    assert "speaker-independent" in metrics["context"]["protocol"]
    assert metrics["uar"] > 0.5  # 4 classes: chance is 0.25
    for name in ("data/manifest.csv", "data/excluded.csv", "embeddings/features.npz", "models/model.json",
                 "models/oof.csv", "results/cv.json", "results/confusion.png", "results/umap.png"):
        assert (repo / name).stat().st_size > 0, name


@pytest.mark.slow
def test_predict_uses_the_models_this_run_trained(repo, tmp_path):
    """``python -m stages.predict`` on new synthetic clips, with the clone's own models/ (its card
    written by the train stage): every clip gets one of the run's labels, mostly the right one."""
    from ser.config import Params
    from ser.corpora import synthetic
    from ser.models.model_card import read

    synthetic.generate(tmp_path / "new", speakers=2, clips=2, classes=["angry", "happy", "neutral", "sad"],
                       duration=1.5, seed=99)
    clips = synthetic.scan(tmp_path / "new", Params())
    run(repo, "python", "-m", "stages.predict", str(tmp_path / "new"), "--models", "models",
        "--output", str(tmp_path / "out.json"), "--quiet")
    out = json.loads((tmp_path / "out.json").read_text())
    card = read(repo / "models")
    assert out["labels"] == card.labels and out["model"]["features"] == card.identity
    assert out["model"]["temperature"] == card.calibration.temperature
    predicted = {Path(f["path"]).stem: f["predicted"] for f in out["files"]}
    assert sorted(predicted) == sorted(clips["clip_id"]) and all("error" not in f for f in out["files"])
    right = [predicted[c] == label for c, label in zip(clips["clip_id"], clips["label"])]
    assert sum(right) >= len(right) / 2, (predicted, clips["label"].tolist())  # chance: a quarter


@pytest.mark.slow
def test_rerun_with_same_params_does_nothing(repo):
    log = run(repo, "dvc", "exp", "run", *FAST)
    assert stages_run(log) == LISTING, log


@pytest.mark.slow
def test_a_changed_test_corpus_reruns_crosstest_and_nothing_else(repo, tmp_path):
    """cross_corpus names a folder outside the repository: crosstest re-runs when a file there is added, and
    not when nothing changed (crosscorpora's listing is then the same)."""
    import shutil

    from ser.config import Params
    from ser.corpora import synthetic

    synthetic.generate(tmp_path / "other", speakers=2, clips=2, classes=["angry", "sad"], duration=1.2, seed=7)
    clips = synthetic.scan(tmp_path / "other", Params())
    clips[["path", "label", "speaker"]].to_csv(tmp_path / "other.csv", index=False)
    entry = f"cross_corpus=[{{name: other, dataset: folder, csv: {tmp_path / 'other.csv'}}}]"
    log = run(repo, "dvc", "exp", "run", *FAST, "-S", entry)
    assert stages_run(log) == {"crosscorpora", "crosstest", "evaluate"}, log
    block = json.loads((repo / "results/metrics.json").read_text())["cross_corpus"]["other"]
    assert block["clips"] == len(clips) and block["classes"] == 2
    log = run(repo, "dvc", "exp", "run", *FAST, "-S", entry)
    assert stages_run(log) == LISTING, log
    synthetic.generate(tmp_path / "more", speakers=2, clips=1, classes=["angry"], duration=1.2, seed=8)
    shutil.copy(synthetic.scan(tmp_path / "more", Params())["path"][0], tmp_path / "other" / "extra.wav")  # new audio
    with open(tmp_path / "other.csv", "a") as f:
        f.write(f"{tmp_path / 'other' / 'extra.wav'},angry,spk00\n")
    log = run(repo, "dvc", "exp", "run", *FAST, "-S", entry)
    assert stages_run(log) == {"crosscorpora", "crosstest", "evaluate"}, log
    assert json.loads((repo / "results/metrics.json").read_text())["cross_corpus"]["other"]["clips"] == len(clips) + 1


@pytest.mark.slow
def test_training_param_reruns_only_train_crosstest_and_evaluate(repo):
    log = run(repo, "dvc", "exp", "run", *FAST, "-S", "svm.C=3")
    assert stages_run(log) == {"train", "crosstest", "evaluate", *LISTING}, log


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_RAVDESS.is_dir(), reason=f"real RAVDESS copy not present at {SHARED_RAVDESS}")
def test_ravdess_end_to_end(tmp_path):
    """Real speech: 8 classes, 24 actors, speaker-disjoint folds, UAR well above chance (0.125)."""
    import pandas as pd

    dest = clone_worktree(tmp_path)
    log = run(dest, "dvc", "exp", "run", "-S", "dataset=ravdess", "-S", f"data.dir={SHARED_RAVDESS}",
              *RAVDESS_FAST)
    assert stages_run(log) == set(STAGES), log
    manifest = pd.read_csv(dest / "data/manifest.csv", dtype={"speaker": str})
    assert manifest["label"].nunique() == 8 and manifest["speaker"].nunique() == 24
    oof = pd.read_csv(dest / "models/oof.csv", dtype={"speaker": str})
    assert oof.groupby("speaker")["fold"].nunique().max() == 1, "a speaker sits in two folds"
    assert len(oof) == len(manifest) == 1439  # 1440 clips, two of Actor_07 byte-identical: one excluded
    excluded = pd.read_csv(dest / "data/excluded.csv")
    assert excluded["reason"].tolist() == ["duplicate audio: same content as clip 03-01-03-01-02-01-07"]
    metrics = json.loads((dest / "results/metrics.json").read_text())
    assert metrics["uar"] > 0.3, metrics

    # predict: a recording of one clip per emotion, one after another, is cut into one window per clip
    # that predicts what the clip alone does (windows keep pauses, as training clips do)
    import numpy as np
    import soundfile as sf

    from ser.corpora.audio import load
    from ser.inference.predict import Predictor

    predictor = Predictor.load(dest / "models")
    agree = []
    for speaker in sorted(manifest["speaker"].unique())[:4]:
        clips = manifest[manifest["speaker"] == speaker].groupby("label").head(1)
        sf.write(tmp_path / "joined.wav", np.concatenate([load(p, 16000) for p in clips["path"]]), 16000)
        alone = [r.proba.argmax() for r in predictor.predict(list(clips["path"]))]
        (joined,) = predictor.predict([tmp_path / "joined.wav"])
        assert len(joined.segments) == len(clips) == 8, (speaker, joined.segments)
        agree += [s.proba.argmax() == a for s, a in zip(joined.segments, alone)]
    assert np.mean(agree) >= 0.75, agree  # 28 of 32 when written; 4 of 32 with windows cut to the speech


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_experiment_workflow(repo):
    """Compare classifiers the way docs/experiments.md shows: exp run, exp show, metrics/plots diff, a queue."""
    log = run(repo, "dvc", "exp", "run", *FAST, "-S", "classifier=mlp", "-n", "try-mlp")
    assert stages_run(log) == {"route", "train", "crosstest", "evaluate", *LISTING}, log  # route: its output unchanged
    log = run(repo, "dvc", "exp", "run", *FAST, "-S", "classifier=xgboost", "-n", "try-xgb")
    assert stages_run(log) == {"route", "train", "crosstest", "evaluate", *LISTING}, log

    shown = experiments(repo)
    assert all(shown.get(name, ("missing", None))[1] is not None for name in ("try-mlp", "try-xgb")), shown

    diff = json.loads(run(repo, "dvc", "metrics", "diff", "try-mlp", "try-xgb", "--json"))
    assert "uar" in diff["results/metrics.json"], diff
    plots = run(repo, "dvc", "plots", "diff", "try-mlp", "try-xgb", "-o", "plots_html")
    assert (repo / "plots_html" / "index.html").stat().st_size > 0, plots

    queued = {f"queued-{name}" for name in ("svm", "xgboost")}
    for name in ("svm", "xgboost"):
        run(repo, "dvc", "exp", "run", "--queue", *FAST, "-S", f"classifier={name}", "-S", "cv.folds=4",
            "-n", f"queued-{name}")
    try:
        run(repo, "dvc", "queue", "start", "-j", "1")
        status = wait_for_queue(repo, queued, QUEUE_TIMEOUT)
    finally:
        stop_queue(repo)
    done = {name: exp for name, exp in experiments(repo).items() if name in queued}
    assert set(done) == queued, (done, status)
    assert all(state in ("success", "done") and uar is not None for state, uar in done.values()), (done, status)


def experiments(repo: Path, check: bool = True) -> dict[str, tuple[str, float | None]]:
    """Name -> (executor state, UAR) of the named experiments `dvc exp show` lists; the state is
    queued, running, success or failed ("done" once DVC dropped it), the UAR None without metrics.
    ``check=False``: an empty dict when `exp show` fails or hangs (it can while a queued run starts: DVC's reader
    thread dies on a ref the run has not written yet, pygit2 NotFoundError, and the command waits for it forever;
    it is killed after 60 s and the next poll asks again)."""
    try:
        out = run(repo, "dvc", "exp", "show", "--json", check=check, timeout=120 if check else 60)
    except CommandError:
        if check:
            raise
        return {}
    try:
        shown = json.loads(out)
    except ValueError:
        if check:
            raise
        return {}
    found = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state", "done")
            for rev in exp.get("revs") or []:
                metrics = ((rev.get("data") or {}).get("metrics") or {}).get("results/metrics.json") or {}
                if rev.get("name"):
                    found[rev["name"]] = (state, (metrics.get("data") or {}).get("uar"))
    return found


def wait_for_queue(repo: Path, names: set[str], timeout: float) -> str:
    """Poll until `dvc queue status` shows nothing queued or running, or `dvc exp show` has every
    experiment in ``names`` finished: the worker can die on a JSON race after the runs finished,
    leaving the status stale. Returns the last status; fails after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        try:
            status = run(repo, "dvc", "queue", "status", check=False, timeout=60)  # can itself hit the race
        except CommandError:  # it hung on it (killed after 60 s): ask again
            status = ""
        if "Task" in status and not re.search(r"\b(Queued|Running)\b", status):
            return status
        shown = experiments(repo, check=False)  # a running experiment shows its parent's metrics: go by state
        if all(shown.get(name, ("missing", None))[0] in FINISHED for name in names):
            return status
        time.sleep(5)
    raise AssertionError(f"queued experiments not done after {timeout} s:\n{status}")


def stop_queue(repo: Path) -> None:
    """Stop the queue's worker, then kill whatever still runs inside the clone (a worker that no
    longer answers, an experiment)."""
    import psutil  # a dependency of dvc

    run(repo, "dvc", "queue", "stop", "--kill", check=False, timeout=60)
    inside = str(repo.resolve())
    left = []
    for proc in psutil.process_iter(["cwd"]):
        cwd = proc.info["cwd"]
        if proc.pid != os.getpid() and cwd and (cwd == inside or cwd.startswith(inside + os.sep)):
            left.append(proc)
    for proc in left:
        proc.kill()
    psutil.wait_procs(left, timeout=10)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_finetune_trains_on_audio_and_its_params_never_rerun_frozen_stages(repo, tmp_path):
    """A fine-tuning param re-runs nothing of a frozen experiment; choosing fine-tuning stores audio
    (no encoder extraction), fine-tunes a tiny Whisper, and evaluate and predict work on its models."""
    from model_fixtures import tiny_whisper

    log = run(repo, "dvc", "exp", "run", *FAST, "-S", "finetune.alpha_asr=0.3")
    assert stages_run(log) == {"route", *LISTING}, log
    encoder = tiny_whisper(tmp_path / "whisper")
    log = run(repo, "dvc", "exp", "run", *FAST, "-S", "classifier=finetune",  # trust.novelty auto: msp for audio
              "-S", "features.extractor=whisper", "-S", "trust.speech=none",  # synthetic tones are not speech
              "-S", f"features.model={encoder}", "-S", "finetune.max_epochs=1", "-S", "cv.max_folds=1",
              "-S", f"finetune.checkpoint_dir={tmp_path / 'checkpoints'}", timeout=1100)
    assert stages_run(log) == set(STAGES), log  # prepare too: it checks the cv settings (cv.max_folds)
    assert json.loads((repo / "embeddings/features.json").read_text())["identity"]["extractor"] == "audio"
    metrics = json.loads((repo / "results/metrics.json").read_text())
    assert "only the first 1 of its" in metrics["context"]["protocol"], metrics["context"]
    assert (repo / "models/backbone/model.safetensors").is_file()
    run(repo, "python", "-m", "stages.predict", "data/raw/synthetic", "--models", "models",
        "--output", str(tmp_path / "out.json"), "--quiet")
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["files"] and all(f.get("predicted") in out["labels"] for f in out["files"]), out["files"][:2]
