"""Predict on hour-long recordings: peak resident memory and throughput, each in a fresh process.

    python benchmarks/bench_long_audio.py [--minutes 10 60] [--dir /tmp/long-audio-bench] [--block-seconds 30]

Builds once (reused on later runs) the MFCC + SVM models/ folder of ``bench_predict.py`` and, per
``--minutes``, a 16 kHz 16-bit WAV of RAVDESS clips (``../shared/data/ravdess-speech-16k``, when
present; else the synthetic speech-like clips) in shuffled order with 0.3-1.5 s of faint noise
between them, written clip by clip. Then a fresh process per file loads the model, runs
``Predictor.predict`` on the file and reports its peak resident memory (``VmHWM``) after loading
and at the end, and the audio seconds predicted per second. One 2.5 s clip gives the baseline
(interpreter, libraries, model). Peak memory that does not grow from the shortest to the longest
file is the point: the 60-minute file is 230 MB of float32 samples.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from bench_predict import ROOT, SR, make_clips, make_models

from ser.corpora.audio import load

RAVDESS = ROOT.parent / "shared" / "data" / "ravdess-speech-16k"
CHILD = """
import json, sys, time
from pathlib import Path
from ser.inference.predict import Predictor

def peak_mb():
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024

models, path, block = sys.argv[1], sys.argv[2], float(sys.argv[3])
predictor = Predictor.load(models, block_seconds=block)
loaded = peak_mb()
start = time.perf_counter()
(result,) = predictor.predict([path])
seconds = time.perf_counter() - start
assert result.ok, result.error
print(json.dumps({"audio_s": result.duration, "segments": len(result.segments), "predict_s": round(seconds, 2),
                  "audio_s_per_s": round(result.duration / seconds, 1), "peak_after_load_mb": round(loaded),
                  "peak_mb": round(peak_mb())}))
"""


def speech_clips(fallback: list[str]) -> list[str]:
    found = sorted(str(p) for p in RAVDESS.rglob("*.flac")) if RAVDESS.is_dir() else []
    return found or fallback


def recording(path: Path, clips: list[str], minutes: float) -> None:
    """Clips in shuffled order with short noisy pauses, written clip by clip up to ``minutes``."""
    if path.exists() and abs(sf.info(path).duration - minutes * 60) < 1:
        return
    rng = np.random.default_rng(0)
    order = itertools.cycle(rng.permutation(clips))
    total, goal = 0, int(minutes * 60 * SR)
    with sf.SoundFile(path, "w", SR, 1, "PCM_16") as out:
        while total < goal:
            pause = 0.001 * rng.standard_normal(int(rng.uniform(0.3, 1.5) * SR))
            part = np.concatenate([load(next(order), SR), pause])[: goal - total]
            out.write(part)
            total += len(part)


def measure(models: Path, path: Path, block_seconds: float) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(models), str(path), str(block_seconds)], cwd=ROOT,
                         check=True, capture_output=True, text=True)
    return {"file": path.name, **json.loads(out.stdout.splitlines()[-1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[10.0, 60.0])
    ap.add_argument("--block-seconds", type=float, default=30.0, help="Predictor block_seconds")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/long-audio-bench"))
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    clips = make_clips(args.dir / "clips", 240, 2.5)
    models = make_models(args.dir, clips)
    sources = speech_clips(clips["path"].tolist())
    files = [Path(clips["path"].iloc[0])]
    for minutes in sorted(args.minutes):
        files.append(args.dir / f"speech-{minutes:g}min.wav")
        recording(files[-1], sources, minutes)
    runs = [measure(models, f, args.block_seconds) for f in files]
    print(json.dumps({"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                                 f"load average {os.getloadavg()[0]:.1f}",
                      "speech": "RAVDESS" if sources[0].endswith(".flac") else "synthetic",
                      "block_seconds": args.block_seconds, "runs": runs}, indent=2))
    for r in runs:
        print(f"{r['file']:>24}: {r['audio_s'] / 60:6.1f} min, {r['segments']:5d} segments, "
              f"{r['audio_s_per_s']:6.1f} audio-s/s, peak RSS {r['peak_mb']} MB "
              f"(after loading {r['peak_after_load_mb']} MB)")


if __name__ == "__main__":
    main()
