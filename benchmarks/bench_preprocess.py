"""Tier-0 preprocessing on RAVDESS: its speed on 2 CPU cores, and whether it helps on noisy test audio.

    python benchmarks/bench_preprocess.py speed --data ../shared/data/ravdess-speech-16k --whisper /tmp/whisper-base
    python benchmarks/bench_preprocess.py noise --data ../shared/data/ravdess-speech-16k --whisper /tmp/whisper-base
    python benchmarks/bench_preprocess.py vad --data ../shared/data/ravdess-speech-16k

vad: where the VAD should listen. On ``--clips`` clean clips, how many keep no speech region when Silero
hears DeepFilterNet3's output; then on noisy copies (white, babble; 0 and 5 dB) the share of the clean
clip's speech regions that Silero's regions cover, and the clips left with none, hearing the noisy input
against hearing it denoised.

speed: on ``--clips`` RAVDESS clips, one thread each: Silero VAD, DeepFilterNet3 (also on two threads at
once, as in extract's reader threads) and Demucs DNS64 (random weights of the DNS64 shape) in x real
time; DeepFilterNet3 once more on one long recording (the clips joined, enhanced in chunks); reading
cleaned audio back from the cache against cleaning it again; then extraction through
``ser.features.extract.extract`` (reader threads, Whisper-base or MFCC) over the same clips into empty
caches with no chain, with VAD, and with DeepFilterNet3 + VAD, in one run, in audio-s/s.

noise: speaker-independent 5-fold CV (the pipeline's folds). Each fold's SVM is trained on the clean
clips of its training speakers and tested on its test speakers' clips mixed with noise at 10, 5 and 0 dB
SNR: white noise, and babble (6 clips of other speakers summed). The SNR is that of the speech: the
clip's power over its active 25 ms frames (within 30 dB of the loudest). For MFCC statistics and
Whisper-base layer 3, with no chain and with ``denoise: deepfilternet`` + ``vad: silero`` (applied to
training and test clips alike). To keep it to about half an hour, every ``--every``-th (6th) test clip of each
fold is mixed (all of them are clean-tested too). A clip the chain rejects (no speech found) counts as
wrong. Prints one table (UAR) and writes it as JSON with ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ser import features  # noqa: E402
from ser.config import Params, load_params  # noqa: E402
from ser.corpora.audio import load  # noqa: E402
from ser.corpora.manifest import prepare  # noqa: E402
from ser.evaluation.metrics import scores  # noqa: E402
from ser.features.extract import extract  # noqa: E402
from ser.models import classifiers  # noqa: E402
from ser.models.cv import outer_folds, plan  # noqa: E402

SR = 16000
CHAINS = {"none": {}, "deepfilternet+silero": {"denoise": "deepfilternet", "vad": "silero"}}
SNRS = (10, 5, 0)


def params_for(data: Path, whisper: Path | None, extractor: str, chain: dict) -> Params:
    base = load_params(ROOT / "params.yaml").model_dump()
    base.update(dataset="ravdess", classifier="svm", preprocess={**base["preprocess"], **chain})
    base["data"] = {**base["data"], "dir": str(data)}
    base["augment"] = {**base["augment"], "n_augmentations": 0}
    feats = {"extractor": extractor, "pooling": "mean"}
    if extractor == "whisper":
        feats.update(model=str(whisper), layers=3)
    base["features"] = {**base["features"], **feats}
    return Params.model_validate(base)


def speech_power(wave: np.ndarray) -> float:
    frames = wave[: len(wave) // 400 * 400].reshape(-1, 400)
    power = np.mean(frames ** 2, axis=1)
    return float(np.mean(power[power >= power.max() * 1e-3]))


def mix(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    noise = np.resize(noise, len(clean))
    gain = np.sqrt(speech_power(clean) / max(np.mean(noise ** 2), 1e-12) / 10 ** (snr_db / 10))
    return (clean + gain * noise).astype(np.float32)


def babble(manifest: pd.DataFrame, speaker: str, n: int, rng: np.random.Generator) -> np.ndarray:
    others = manifest[manifest["speaker"] != speaker]
    waves = [load(p, SR) for p in others["path"].to_numpy()[rng.choice(len(others), 6, replace=False)]]
    out = np.zeros(n, np.float32)
    for w in waves:
        out += np.resize(w, n) / np.sqrt(speech_power(w))
    return out


def noisy_manifest(manifest: pd.DataFrame, rows: np.ndarray, kind: str, snr: float, root: Path) -> pd.DataFrame:
    """The clips ``rows`` mixed with noise, written once to ``root`` (seeded by clip), as a manifest."""
    import hashlib

    out = []
    for i in rows:
        r = manifest.iloc[i]
        path = root / f"{kind}{snr}" / f"{r.clip_id}.wav"
        if not path.exists():
            rng = np.random.default_rng([i, int(snr), kind == "babble"])
            clean = load(r.path, SR)
            noise = babble(manifest, r.speaker, len(clean), rng) if kind == "babble" else \
                rng.standard_normal(len(clean)).astype(np.float32)
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, np.clip(mix(clean, noise, snr), -1, 1), SR, subtype="FLOAT")
        out.append({**r.to_dict(), "path": str(path), "sha1": hashlib.sha1(path.read_bytes()).hexdigest()})
    return pd.DataFrame(out)


def noise_run(args) -> None:
    table = []
    for extractor in ("mfcc", "whisper"):
        if extractor == "whisper" and args.whisper is None:
            continue
        for name, chain in CHAINS.items():
            params = params_for(args.data, args.whisper, extractor, chain)
            manifest, _, _ = prepare(params)
            manifest = manifest.reset_index(drop=True)
            extractor_ = features.build(params)
            meta = manifest.assign(aug=0)
            folds = outer_folds(meta, plan(meta["speaker"].to_numpy(), 5, "speaker"), params.seed)
            clean = extract(manifest, extractor_, args.workdir / "cache", None, params.seed, 30.0, 2)
            X = pd.DataFrame(clean.X, index=clean.meta["clip_id"])
            labels = sorted(manifest["label"].unique())
            by_id = manifest.set_index("clip_id")
            subset = np.sort(np.concatenate([test[::args.every] for _, test in folds]))
            conditions = {"clean": manifest} | {
                f"{kind} {snr} dB": noisy_manifest(manifest, subset, kind, snr, args.workdir / "noisy")
                for kind in ("white", "babble") for snr in SNRS}
            row = {"features": extractor, "preprocess": name, "clean_clips": len(manifest), "noisy_clips": len(subset)}
            models = []  # one SVM per fold, trained on the clean clips of its training speakers
            for train, _ in folds:
                fit_ids = [c for c in manifest["clip_id"].iloc[train] if c in X.index]
                models.append(classifiers.fit(classifiers.get("svm").build(params, params.seed),
                                              X.loc[fit_ids].to_numpy(), by_id.loc[fit_ids, "label"].to_numpy(),
                                              meta.set_index("clip_id").loc[fit_ids].reset_index()))
            for cond, listed in conditions.items():
                got = extract(listed, extractor_, args.workdir / "cache", None, params.seed, 30.0, 2)
                Xc = pd.DataFrame(got.X, index=got.meta["clip_id"])
                actual, predicted = [], []
                for model, (_, test) in zip(models, folds):
                    test_ids = list(manifest["clip_id"].iloc[test if cond == "clean" else np.intersect1d(test, subset)])
                    kept = [c for c in test_ids if c in Xc.index]
                    guess = dict(zip(kept, model.predict(Xc.loc[kept].to_numpy()))) if kept else {}
                    actual += list(by_id.loc[test_ids, "label"])
                    predicted += [guess.get(c, "(rejected)") for c in test_ids]
                row[cond] = round(scores(np.array(actual), np.array(predicted), labels)["uar"], 4)
                row[f"{cond} rejected"] = int(len(listed) - len(got.meta))
                print(f"{extractor} / {name} / {cond}: UAR {row[cond]:.4f} ({row[f'{cond} rejected']} rejected)",
                      flush=True)
            table.append(row)
    print(pd.DataFrame(table).to_string(index=False))
    if args.out:
        args.out.write_text(json.dumps(table, indent=1))


def rate(fn, waves: list[np.ndarray], threads: int = 1) -> float:
    """Audio seconds per second of ``fn`` over ``waves``, on ``threads`` threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fn, waves))
    return sum(map(len, waves)) / SR / (time.perf_counter() - start)


def speed_run(args) -> None:
    import torch

    from ser.config import PreprocessParams
    from ser.preprocess import demucs, vad
    from ser.preprocess.deepfilternet import CHUNK, DeepFilterNet
    from ser.preprocess.pipeline import Preprocessor

    torch.set_num_threads(1)
    params = params_for(args.data, args.whisper, "mfcc", {})
    manifest, _, _ = prepare(params)
    listed = manifest.sample(args.clips, random_state=0).reset_index(drop=True)
    waves = [load(p, SR) for p in listed["path"]]
    print(f"{len(waves)} clips, {sum(map(len, waves)) / SR:.0f} s of audio; one thread each", flush=True)
    silero = PreprocessParams().silero
    print(f"Silero VAD: {rate(lambda w: vad.speech_regions(w, SR, silero), waves):.0f}x real time", flush=True)
    dfn = DeepFilterNet(SR)
    print(f"DeepFilterNet3, per clip: {rate(dfn, waves):.1f}x real time on one thread, "
          f"{rate(dfn, waves, 2):.1f}x on two", flush=True)
    print(f"DeepFilterNet3, the clips as one recording (in {CHUNK // 100} s chunks): "
          f"{rate(dfn, [np.concatenate(waves)]):.1f}x real time", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        torch.save(demucs.Demucs(hidden=64).state_dict(), Path(tmp) / "dns64-random.th")
        den = demucs.DemucsDenoiser(Path(tmp) / "dns64-random.th", SR)
        print(f"Demucs DNS64 (random weights): {rate(den, waves):.1f}x real time", flush=True)
        chain = Preprocessor(PreprocessParams(denoise="deepfilternet", vad="silero"), SR)
        cleaned = []
        compute = rate(lambda w: cleaned.append(chain(w)), waves)
        for k, w in enumerate(cleaned):
            np.save(Path(tmp) / f"{k}.npy", w)
        start = time.perf_counter()
        for k in range(len(cleaned)):
            np.load(Path(tmp) / f"{k}.npy")
        read = sum(map(len, waves)) / SR / (time.perf_counter() - start)
        print(f"DeepFilterNet3 + VAD chain: {compute:.1f}x real time; reading the cleaned audio back: {read:.0f}x")
    torch.set_num_threads(os.cpu_count() or 1)
    extractor = "whisper" if args.whisper else "mfcc"
    for name, chain in {"none": {}, "silero": {"vad": "silero"}, **CHAINS}.items():
        p = params_for(args.data, args.whisper, extractor, chain)
        with tempfile.TemporaryDirectory() as tmp:
            got = extract(listed, features.build(p), tmp, None, 0, 30.0, p.data.workers)
        s, heard = got.stats, float(listed["duration"].sum())
        print(f"extract ({extractor}, preprocess {name}): {heard / s['seconds']:.1f} audio-s/s of input "
              f"({heard:.0f} s read, {s['audio_seconds']:.0f} s embedded, in {s['seconds']:.0f} s)", flush=True)


def vad_run(args) -> None:
    from ser.config import PreprocessParams
    from ser.preprocess import vad
    from ser.preprocess.deepfilternet import DeepFilterNet

    params = params_for(args.data, None, "mfcc", {})
    manifest, _, _ = prepare(params)
    manifest = manifest.reset_index(drop=True)
    listed = manifest.sample(args.clips, random_state=0)
    silero, dfn, rng = PreprocessParams().silero, DeepFilterNet(SR), np.random.default_rng(0)

    def cover(found: list, truth: list) -> float:
        hit = sum(max(0, min(e, e2) - max(s, s2)) for s, e in found for s2, e2 in truth)
        return hit / max(1, sum(e - s for s, e in truth))

    clean = {r.clip_id: load(r.path, SR) for r in listed.itertuples()}
    truth = {c: vad.speech_regions(w, SR, silero) for c, w in clean.items()}
    lost = [c for c, w in clean.items() if not vad.speech_regions(dfn(w), SR, silero)]
    print(f"{len(clean)} clean clips: Silero finds speech in {sum(map(bool, truth.values()))} as read, and none in "
          f"{len(lost)} once denoised by DeepFilterNet3 ({', '.join(lost)})", flush=True)
    for kind in ("white", "babble"):
        for snr in (0, 5):
            got = {"noisy input": [], "denoised": []}
            for r in listed.itertuples():
                noise = babble(manifest, r.speaker, len(clean[r.clip_id]), rng) if kind == "babble" else \
                    rng.standard_normal(len(clean[r.clip_id])).astype(np.float32)
                x = mix(clean[r.clip_id], noise, snr)
                got["noisy input"].append(vad.speech_regions(x, SR, silero))
                got["denoised"].append(vad.speech_regions(dfn(x), SR, silero))
            print(f"{kind} {snr} dB: " + "; ".join(
                f"hearing the {name}: covers {np.mean([cover(f, truth[c]) for f, c in zip(found, clean)]):.2f} "
                f"of the speech, {sum(not f for f in found)} clips with none" for name, found in got.items()),
                flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["speed", "noise", "vad"])
    parser.add_argument("--data", type=Path, required=True, help="RAVDESS speech folder")
    parser.add_argument("--whisper", type=Path, help="Whisper-base folder (../shared/tools/whisper_base_offline.py)")
    parser.add_argument("--clips", type=int, default=60, help="speed, vad: clips to use")
    parser.add_argument("--every", type=int, default=6, help="noise: mix every n-th test clip of each fold")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench_preprocess")
    parser.add_argument("--out", type=Path, help="noise: write the table as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs", flush=True)
    {"speed": speed_run, "noise": noise_run, "vad": vad_run}[args.mode](args)


if __name__ == "__main__":
    main()
