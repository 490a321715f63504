"""Predict: startup time and throughput with an MFCC + SVM model, on generated speech-like files.

    python benchmarks/bench_predict.py [--files 240] [--seconds 2.5] [--long-minutes 2] [--dir /tmp/predict-bench]

Builds once (reused on later runs) a folder of synthetic clips and a models/ folder (MFCC + SVM fit
on those clips by ``ser.models.train.train``, as the train stage does), then measures:

- startup: ``python -m stages.predict one.wav`` in a fresh process (import, load, one file), wall
  time best and median of ``--repeats`` and its CPU time (user+sys, robust to a busy machine); and
  the import / load split in-process, checking torch stays unimported;
- throughput: files/s and audio seconds/s of ``Predictor.predict`` over the folder (model loaded
  once), next to the extract stage's loop (``ser.features.extract.extract``, empty cache) on the same files;
- one long recording (``--long-minutes``) cut into segments.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from trained_fixtures import manifest, train_models  # noqa: E402

from ser import features  # noqa: E402
from ser.config import Params  # noqa: E402
from ser.corpora import synthetic  # noqa: E402
from ser.corpora.audio import load  # noqa: E402
from ser.inference.predict import Predictor  # noqa: E402

CLASSES = ["angry", "happy", "neutral", "sad"]
SR = 16000
PARAMS = Params.model_validate({"dataset": "synthetic", "features": {"extractor": "mfcc"},
                                "augment": {"n_augmentations": 0}})


def make_clips(root: Path, files: int, seconds: float) -> pd.DataFrame:
    per = max(1, files // (6 * len(CLASSES)))
    if not root.is_dir() or len(list(root.glob("*.wav"))) != 6 * len(CLASSES) * per:
        synthetic.generate(root, speakers=6, clips=per, classes=CLASSES, duration=seconds, seed=0)
    return synthetic.scan(root, PARAMS)


def make_models(root: Path, clips: pd.DataFrame) -> Path:
    """``root``/models: MFCC + SVM trained on ``clips`` by the library's training function (once)."""
    if not (root / "models" / "model.json").exists():
        train_models(root, clips, PARAMS)
    return root / "models"


def startup(models: Path, wav: str, repeats: int) -> dict:
    cli, cpu = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "stages.predict", wav, "--models", str(models), "-q"], cwd=ROOT,
                       check=True, capture_output=True)
        cli.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    probe = ("import json, sys, time; t = time.perf_counter(); from ser.inference.predict import Predictor; "
             "i = time.perf_counter(); Predictor.load(sys.argv[1]); l = time.perf_counter(); "
             "print(json.dumps({'import_s': i - t, 'load_s': l - i, 'torch_imported': 'torch' in sys.modules}))")
    split = json.loads(subprocess.run([sys.executable, "-c", probe, str(models)], cwd=ROOT, check=True,
                                      capture_output=True, text=True).stdout)
    return {"cli_best_s": round(min(cli), 2), "cli_median_s": round(statistics.median(cli), 2),
            "cli_cpu_s": round(statistics.median(cpu), 2),  # user+sys: what the wall time is on an idle core
            **{k: round(v, 2) if isinstance(v, float) else v for k, v in split.items()}}


def predict_rate(models: Path, paths: list[str], workers: int) -> dict:
    predictor = Predictor.load(models, workers=workers)
    start = time.perf_counter()
    results = list(predictor.predict(paths))
    seconds = time.perf_counter() - start
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    audio = sum(r.duration for r in results)
    return {"files": len(results), "seconds": round(seconds, 2), "files_per_s": round(len(results) / seconds, 1),
            "audio_s_per_s": round(audio / seconds, 1), "segments": sum(len(r.segments) for r in results)}


def extract_rate(clips: pd.DataFrame, workers: int) -> dict:
    from ser.features.extract import extract

    listed = manifest(clips)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        result = extract(listed, features.build(PARAMS), cache, None, 0, PARAMS.features.batch_seconds, workers)
        seconds = time.perf_counter() - start
    return {"files": len(result.X), "seconds": round(seconds, 2), "files_per_s": round(len(result.X) / seconds, 1),
            "audio_s_per_s": round(float(listed["duration"].sum()) / seconds, 1)}


def long_recording(path: Path, clips: pd.DataFrame, minutes: float) -> None:
    if path.exists():
        return
    rng = np.random.default_rng(0)
    parts, total = [], 0
    for p in clips["path"].sample(frac=1, random_state=0):
        wave = load(p, SR)
        gap = (0.001 * rng.standard_normal(int(rng.uniform(0.3, 1.5) * SR))).astype(np.float32)
        parts += [wave, gap]
        total += len(wave) + len(gap)
        if total >= minutes * 60 * SR:
            break
    sf.write(path, np.concatenate(parts), SR)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=240)
    ap.add_argument("--seconds", type=float, default=2.5, help="mean clip length (each varies +-15%%)")
    ap.add_argument("--long-minutes", type=float, default=2.0)
    ap.add_argument("--workers", type=int, default=2, help="reader threads (predict) / workers (extract)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/predict-bench"))
    args = ap.parse_args()
    clips = make_clips(args.dir / "clips", args.files, args.seconds)
    models = make_models(args.dir, clips)
    long_wav = args.dir / "long.wav"
    long_recording(long_wav, clips, args.long_minutes)
    paths = clips["path"].tolist()

    report = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                         f"load average {os.getloadavg()[0]:.1f} at start",
              "startup": startup(models, paths[0], args.repeats)}
    predict_rate(models, paths[:8], args.workers)  # warm the page cache and librosa
    runs = [(predict_rate(models, paths, args.workers), extract_rate(clips, args.workers)) for _ in range(2)]
    report["predict"] = max((p for p, _ in runs), key=lambda r: r["files_per_s"])
    report["extract_stage"] = max((e for _, e in runs), key=lambda r: r["files_per_s"])
    report["long_recording"] = predict_rate(models, [str(long_wav)], args.workers)
    report["long_recording"]["minutes"] = round(sf.info(long_wav).duration / 60, 2)
    print(json.dumps(report, indent=2))
    s, p, e = report["startup"], report["predict"], report["extract_stage"]
    long = report["long_recording"]
    print(f"\nstartup {s['cli_best_s']} s best / {s['cli_median_s']} s median, {s['cli_cpu_s']} s CPU "
          f"(import {s['import_s']} s, load {s['load_s']} s, torch imported: {s['torch_imported']}); "
          f"predict {p['files_per_s']} files/s ({p['audio_s_per_s']} audio-s/s) vs extract stage "
          f"{e['files_per_s']} files/s; long recording {long['minutes']} min -> {long['segments']} segments "
          f"in {long['seconds']} s")


if __name__ == "__main__":
    main()
