"""The whole DVC DAG in a temporary clone of this working tree, on the synthetic corpus.

These runs take a minute or two each: they are what a user does, so they are what we test.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAST = ["-S", "dataset=synthetic", "-S", "features.extractor=mfcc"]
RAVDESS_FAST = ["-S", "features.extractor=mfcc", "-S", "augment.n_augmentations=0"]
STAGES = ("prepare", "extract", "train", "evaluate", "visualize")


def run(cwd: Path, *args: str, check: bool = True) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org", "DVC_NO_ANALYTICS": "1"}
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({out.returncode}):\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
    return out.stdout + out.stderr


def stages_run(log: str) -> set[str]:
    return set(re.findall(r"Running stage '(\w+)'", log))


def clone_worktree(dest: Path) -> Path:
    """Copy the files git would commit (tracked + untracked, not ignored) and commit them."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file() and not name.startswith(("data/raw/", "embeddings/cache/")):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    for name in ("dvc.lock",):  # a lock from another run would only confuse the checks below
        (dest / name).unlink(missing_ok=True)
    run(dest, "git", "init", "-q", "-b", "main")
    run(dest, "git", "add", "-A")
    run(dest, "git", "commit", "-qm", "clone")
    return dest


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
def test_rerun_with_same_params_does_nothing(repo):
    log = run(repo, "dvc", "exp", "run", *FAST)
    assert stages_run(log) == set(), log


@pytest.mark.slow
def test_training_param_reruns_only_train_and_evaluate(repo):
    log = run(repo, "dvc", "exp", "run", *FAST, "-S", "svm.C=3")
    assert stages_run(log) == {"train", "evaluate"}, log


SHARED_RAVDESS = ROOT.parent / "shared" / "data" / "ravdess-speech-16k"


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
    assert len(oof) == len(manifest) == 1440 - 1  # Actor_07 repeats one clip's audio: excluded as a duplicate
    metrics = json.loads((dest / "results/metrics.json").read_text())
    assert metrics["uar"] > 0.3, metrics

    # predict: a recording of one clip per emotion, one after another, is cut into one window per clip
    # that predicts what the clip alone does (windows keep pauses, as training clips do)
    import numpy as np
    import soundfile as sf

    from ser.audio import load
    from ser.predict import Predictor

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
def test_experiment_workflow(repo):
    """Compare classifiers the way the README shows: exp run, exp show, metrics/plots diff, a queue."""
    log = run(repo, "dvc", "exp", "run", *FAST, "-S", "classifier=mlp", "-n", "try-mlp")
    assert stages_run(log) == {"train", "evaluate"}, log
    log = run(repo, "dvc", "exp", "run", *FAST, "-S", "classifier=xgboost", "-n", "try-xgb")
    assert stages_run(log) == {"train", "evaluate"}, log

    shown = json.loads(run(repo, "dvc", "exp", "show", "--json"))
    names = {e.get("name") for commit in shown for e in (commit.get("experiments") or [])
             for e in (e.get("revs") or [e])}
    assert {"try-mlp", "try-xgb"} <= names, shown

    diff = json.loads(run(repo, "dvc", "metrics", "diff", "try-mlp", "try-xgb", "--json"))
    assert "uar" in diff["results/metrics.json"], diff
    plots = run(repo, "dvc", "plots", "diff", "try-mlp", "try-xgb", "-o", "plots_html")
    assert (repo / "plots_html" / "index.html").stat().st_size > 0, plots

    for name in ("svm", "xgboost"):
        run(repo, "dvc", "exp", "run", "--queue", *FAST, "-S", f"classifier={name}", "-S", "cv.folds=4",
            "-n", f"queued-{name}")
    run(repo, "dvc", "queue", "start", "-j", "1")
    deadline = time.time() + 600
    while time.time() < deadline:
        status = run(repo, "dvc", "queue", "status")
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        time.sleep(3)
    assert re.search(r"queued-svm\s+.*Success", status) and re.search(r"queued-xgboost\s+.*Success", status), status
