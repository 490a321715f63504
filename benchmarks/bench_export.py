"""fp32 torch (today's predict) against the exported bundle in onnxruntime, fp32 and int8, in one run.

    python benchmarks/bench_export.py --data ../shared/data/ravdess-speech-16k --whisper /tmp/whisper-base
    python benchmarks/bench_export.py ... --wavlm-clips 0          # Whisper-base only
    python benchmarks/bench_export.py --dataset urdu --data ../shared/data/urdu-16k --whisper /tmp/whisper-base \
        --wavlm-clips 0                                              # another corpus

1. Whisper-base (``features.layers: all``, as the default recipe extracts): every clip of the corpus (default
   RAVDESS; ``--dataset``) embedded by the library's extraction (``ser.features.extract.extract``, into empty
   caches) with the torch encoder, the fp32
   graph and the int8 graph (:func:`ser.export.bundle.encoder_bundle`); audio seconds per second of each, the
   cosine of each int8 vector with its fp32 one; then the train stage's function (5-fold speaker-independent
   CV, the default recipe: the best 4 of 7 layers chosen in-fold + SVM) on the torch and on the int8 vectors: UAR.
2. End to end: the torch run's final model (a models folder) exported (``stages.export --int8``), and
   ``Predictor.predict`` over ``--predict-actors`` actors' files with the models folder, the bundle fp32 and the
   bundle int8, ``--repeats`` times interleaved (best of each).
3. A random-weights WavLM-Large (the published configuration; ``bench_extract.make_model``): ``--wavlm-clips``
   clips through the three encoders, as in 1, with cosines (random weights: speed and agreement only).

Everything runs on this machine's cores (2 here); ratios are measured in this one run.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the train stage sets it

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from ser import features  # noqa: E402
from ser.config import Params  # noqa: E402
from ser.corpora.manifest import build_manifest  # noqa: E402
from ser.export.bundle import BundleEncoder, encoder_bundle, export  # noqa: E402
from ser.export.runtime import Bundle  # noqa: E402
from ser.features.extract import extract, feature_params  # noqa: E402
from ser.inference.predict import Predictor  # noqa: E402
from ser.models.train import train  # noqa: E402

ENGINES = ("torch fp32", "onnxruntime fp32", "onnxruntime int8")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def embed_three(manifest, params: Params, tmp: Path, name: str) -> dict:
    """The manifest's clips through the torch encoder and its fp32 and int8 graphs: {engine: (X, meta, s)}."""
    extractor = features.build(params)
    bundle_dir = encoder_bundle(extractor, tmp / f"{name}-encoder", int8=True)
    engines = {"torch fp32": extractor}
    for engine, precision in zip(ENGINES[1:], ("fp32", "int8")):
        engines[engine] = BundleEncoder(Bundle(bundle_dir, precision), extractor.identity())
    out = {}
    for engine, encoder in engines.items():
        start = time.perf_counter()
        result = extract(manifest, encoder, tmp / f"{name}-cache-{engine.replace(' ', '-')}", None, params.seed,
                         params.features.batch_seconds, workers=2)
        out[engine] = (result.X, result.meta, time.perf_counter() - start)
    return {"engines": out, "described": {"identity": extractor.identity(), "blocks": features.blocks(extractor),
                                          "feature_params": feature_params(params)}}


def report_speed(name: str, embedded: dict, audio: float) -> dict:
    rows = {}
    X0, meta0, _ = embedded["engines"]["torch fp32"]
    for engine, (X, meta, seconds) in embedded["engines"].items():
        assert meta["clip_id"].tolist() == meta0["clip_id"].tolist()
        cos = cosines(X, X0)
        rows[engine] = {"seconds": round(seconds, 1), "audio_s_per_s": round(audio / seconds, 1),
                        "speedup": round(embedded["engines"]["torch fp32"][2] / seconds, 2),
                        "cosine_min": round(float(cos.min()), 5), "cosine_mean": round(float(cos.mean()), 5),
                        "max_abs_diff": float(np.abs(X - X0).max())}
        print(f"{name} | {engine}: {seconds:.1f} s, {audio / seconds:.1f} audio-s/s, {rows[engine]['speedup']:.2f}x "
              f"torch; cosine with torch min {cos.min():.5f} mean {cos.mean():.5f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the corpus folder")
    parser.add_argument("--dataset", default="ravdess", help="its reader (default: ravdess)")
    parser.add_argument("--whisper", type=Path, required=True, help="Whisper-base folder")
    parser.add_argument("--wavlm", type=Path, help="a WavLM-Large folder (default: random weights, in a temp folder)")
    parser.add_argument("--wavlm-clips", type=int, default=16, help="clips for WavLM-Large (0: skip)")
    parser.add_argument("--predict-actors", type=int, default=2, help="actors' files predicted end to end")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    base = {"dataset": args.dataset, "data": {"dir": str(args.data), "workers": 2}, "augment": {"n_augmentations": 0},
            "features": {"extractor": "whisper", "model": str(args.whisper), "device": "cpu"}, "classifier": "svm"}
    params = Params.model_validate(base)
    manifest, _, summary = build_manifest(params)
    audio = float(manifest["duration"].sum())
    record = {"cores": os.cpu_count(), "load_before": round(os.getloadavg()[0], 2)}
    print(f"{args.dataset}: {len(manifest)} clips, {audio / 60:.1f} min; {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        whisper = embed_three(manifest, params, tmp, "whisper")
        record["whisper_base"] = {"clips": len(manifest), "audio_seconds": round(audio, 1),
                                  "embedding": report_speed("Whisper-base", whisper, audio)}
        durations = manifest.set_index("clip_id")["duration"]
        uar = {}
        for engine in ("torch fp32", "onnxruntime int8"):
            X, meta, _ = whisper["engines"][engine]
            trained = train(X, meta, params, whisper["described"], tmp / f"models-{engine.split()[-1]}",
                            durations.loc[meta["clip_id"]])
            uar[engine] = round(float(balanced_accuracy_score(trained.oof["actual"], trained.oof["predicted"])), 4)
            print(f"Whisper-base | {engine}: {args.dataset} UAR {uar[engine]:.4f} ({trained.summary['protocol']})",
                  flush=True)
        record["whisper_base"]["uar"] = uar

        export(tmp / "models-fp32", tmp / "bundle", int8=True)
        actors = sorted(manifest["speaker"].unique())[: args.predict_actors]
        files = sorted(manifest.loc[manifest["speaker"].isin(actors), "path"])
        seconds_audio = float(manifest.loc[manifest["speaker"].isin(actors), "duration"].sum())
        predictors = {"torch fp32": Predictor.load(tmp / "models-fp32"),
                      "onnxruntime fp32": Predictor.load(tmp / "bundle"),
                      "onnxruntime int8": Predictor.load(tmp / "bundle", precision="int8")}
        best: dict[str, float] = {}
        for _ in range(args.repeats):
            for engine, predictor in predictors.items():
                start = time.perf_counter()
                results = list(predictor.predict(files, progress=""))
                best[engine] = min(best.get(engine, np.inf), time.perf_counter() - start)
                assert not any(r.error for r in results)
        record["whisper_base"]["predict"] = {
            "files": len(files), "audio_seconds": round(seconds_audio, 1),
            **{e: {"seconds": round(s, 2), "audio_s_per_s": round(seconds_audio / s, 1),
                   "speedup": round(best["torch fp32"] / s, 2)} for e, s in best.items()}}
        for e, s in best.items():
            print(f"predict, {len(files)} files | {e}: {seconds_audio / s:.1f} audio-s/s, "
                  f"{best['torch fp32'] / s:.2f}x torch", flush=True)

        if args.wavlm_clips:
            model = args.wavlm
            if model is None:
                from bench_extract import make_model

                model = tmp / "wavlm-large-random"
                make_model(model)
            wavlm = Params.model_validate({**base, "features": {"extractor": "ssl", "model": str(model),
                                                                "device": "cpu"}})
            some = manifest.iloc[:: max(1, len(manifest) // args.wavlm_clips)].head(args.wavlm_clips)
            seconds_audio = float(some["duration"].sum())
            record["wavlm_large"] = {"weights": "random" if args.wavlm is None else str(args.wavlm),
                                     "clips": len(some), "audio_seconds": round(seconds_audio, 1),
                                     "embedding": report_speed("WavLM-Large", embed_three(some, wavlm, tmp, "wavlm"),
                                                               seconds_audio)}
    record["load_after"] = round(os.getloadavg()[0], 2)
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
