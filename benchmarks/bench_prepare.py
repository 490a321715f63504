"""Prepare throughput on a CREMA-D-sized local corpus (7442 WAV clips, 1.3-5 s, 16 kHz).

    python benchmarks/bench_prepare.py [--clips 7442] [--workers 4] [--dir /tmp/cremad-bench]

Writes generated clips in CREMA-D's layout and naming once (reused on later runs), then times the
prepare stage's work: scan + reading every clip once (hash, decode, duration, silence check).
"""

from __future__ import annotations

import argparse
import itertools
import resource
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from ser.config import Params
from ser.corpora.manifest import build_manifest

EMOTIONS = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
SENTENCES = ["IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI"]


def make_corpus(root: Path, clips: int) -> None:
    wav = root / "AudioWAV"
    if wav.is_dir() and len(list(wav.glob("*.wav"))) == clips:
        return
    wav.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = itertools.product(range(1001, 1092), SENTENCES, EMOTIONS, ["XX", "LO", "MD", "HI"])
    for _, (actor, sentence, emotion, level) in zip(range(clips), names):
        n = int(rng.uniform(1.3, 5.0) * 16000)
        t = np.arange(n) / 16000
        audio = 0.2 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.01 * rng.standard_normal(n)
        sf.write(wav / f"{actor}_{sentence}_{emotion}_{level}.wav", audio.astype(np.float32), 16000,
                 subtype="PCM_16")
    rows = "".join(f"{a},30,Male,Caucasian,Not Hispanic\n" for a in range(1001, 1092))
    (root / "VideoDemographics.csv").write_text("ActorID,Age,Sex,Race,Ethnicity\n" + rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=7442)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/cremad-bench"))
    args = ap.parse_args()
    make_corpus(args.dir, args.clips)
    params = Params.model_validate({"dataset": "cremad", "data": {"dir": str(args.dir), "workers": args.workers}})
    start = time.perf_counter()
    manifest, excluded, summary = build_manifest(params)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"prepare: {len(manifest)} clips ({summary['hours']:.2f} h), {len(excluded)} excluded, {seconds:.1f} s "
          f"with {args.workers} workers ({len(manifest) / seconds:.0f} clips/s), peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
