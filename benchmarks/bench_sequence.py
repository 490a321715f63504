"""Speed and quality of the sequence classifiers on RAVDESS, and training memory at CREMA-D scale.

    python benchmarks/bench_sequence.py --data ../shared/data/ravdess-speech-16k --whisper /tmp/whisper-base
    python benchmarks/bench_sequence.py --data ... --only cnn_bilstm
    python benchmarks/bench_sequence.py --memory      # WavLM-Large-shaped frames of a CREMA-D-sized corpus

Quality and speed: the prepare stage's manifest (``ser.corpora.manifest.prepare``), frames extracted
by ``ser.features.extract.extract`` into a cache under ``--workdir`` (MFCC frames for ``cnn_bilstm``,
Whisper-base frames of every layer for ``attentive``), then speaker-independent 5-fold CV through
``ser.models.cv.cross_validate`` with the default params.yaml groups, exactly as the train stage
fits a fold. Prints the CV wall time (extraction not included), fold-mean and pooled UAR, and the
learned layer weights.

Memory (``--memory``): 7442 clips (CREMA-D) of 2.6 s on average at 50 frames/s, 25 layers x 1024 dims
(WavLM-Large, ``features.layers: all``) as a sparse frames.npy (~50 GB addressed,
nothing written), one epoch of ``attentive`` on it; prints the peak resident memory.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ser import features  # noqa: E402
from ser.config import Params, load_params  # noqa: E402
from ser.corpora.manifest import prepare  # noqa: E402
from ser.embeddings import FrameSet  # noqa: E402
from ser.evaluation.metrics import scores  # noqa: E402
from ser.features.extract import extract  # noqa: E402
from ser.models import classifiers  # noqa: E402
from ser.models.cv import cross_validate, plan  # noqa: E402

RUNS = {  # classifier -> features settings
    "cnn_bilstm": {"extractor": "mfcc", "pooling": "none"},
    "attentive": {"extractor": "whisper", "pooling": "none", "layers": "all"},
}


def params_for(kind: str, data: Path, whisper: Path | None) -> Params:
    base = load_params(ROOT / "params.yaml").model_dump()
    base.update(dataset="ravdess", classifier=kind)
    base["data"] = {**base["data"], "dir": str(data)}
    base["augment"] = {**base["augment"], "n_augmentations": 0}
    base["features"] = {**base["features"], **RUNS[kind], **({"model": str(whisper)} if whisper else {})}
    return Params.model_validate(base)


def frames_of(params: Params, workdir: Path) -> tuple[FrameSet, pd.DataFrame, float]:
    manifest, _, _ = prepare(params)
    start = time.perf_counter()
    result = extract(manifest, features.build(params), workdir / "cache", None, params.seed,
                     params.features.batch_seconds, params.data.workers, 0.05,
                     frames_path=workdir / f"frames-{params.classifier}.npy")
    return result.X, result.meta, time.perf_counter() - start


def cv_run(params: Params, X: FrameSet, meta: pd.DataFrame) -> dict:
    module = classifiers.get(params.classifier)
    labels = sorted(meta["label"].unique())
    y = meta["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    weights = []

    def fit_fold(rows: np.ndarray, k: int):
        model = classifiers.fit(module.build(params, params.seed), X[rows], y[rows], meta.iloc[rows])
        weights.append(classifiers.final_step(model).fit_facts_.get("layer_weights"))
        return model, {}

    start = time.perf_counter()
    cv = cross_validate(X, meta, labels, fit_fold, plan(meta["speaker"].to_numpy(), params.cv.folds, "speaker"),
                        params.seed)
    seconds = time.perf_counter() - start
    pooled = scores(cv.oof["actual"], cv.oof["predicted"], labels)["uar"]
    return {"cv_s": seconds, "fold_uar": float(np.mean([f["uar"] for f in cv.folds])), "pooled_uar": pooled,
            "layer_weights": weights}


def memory_run(clips: int, seconds: float, layers: int, dim: int, epochs: int) -> None:
    rng = np.random.default_rng(0)
    lengths = np.maximum(10, rng.normal(seconds * 50, 25, clips).astype(np.int64))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frames.npy"
        frames = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(int(offsets[-1]), layers, dim))
        del frames  # sparse: nothing written, reads give zeros
        X = FrameSet.open(path, offsets)
        meta = pd.DataFrame({"clip_id": [f"c{i}" for i in range(clips)], "label": [str(i % 6) for i in range(clips)],
                             "speaker": [f"s{i % 91}" for i in range(clips)], "aug": 0})
        params = Params(classifier="attentive", features={"pooling": "none"},
                        attentive={"max_epochs": epochs, "device": "cpu"})
        print(f"{clips} clips, {offsets[-1]} frames x {layers} layers x {dim} dims "
              f"({offsets[-1] * layers * dim * 2 / 1e9:.1f} GB of float16 on disk, sparse)", flush=True)
        start = time.perf_counter()
        classifiers.fit(classifiers.get("attentive").build(params, 0), X, meta["label"].to_numpy(), meta)
        print(f"trained {epochs} epoch(s) in {time.perf_counter() - start:.0f} s; peak resident memory "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="RAVDESS speech folder")
    parser.add_argument("--whisper", type=Path, help="Whisper-base folder (../shared/tools/whisper_base_offline.py)")
    parser.add_argument("--only", choices=sorted(RUNS), nargs="+", default=sorted(RUNS))
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench_sequence")
    parser.add_argument("--memory", action="store_true", help="the CREMA-D x WavLM-Large memory run instead")
    parser.add_argument("--epochs", type=int, default=1, help="--memory: epochs to train")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs", flush=True)
    if args.memory:
        memory_run(7442, 2.6, 25, 1024, args.epochs)
        return
    if args.data is None:
        parser.error("--data is needed (or --memory)")
    for kind in args.only:
        params = params_for(kind, args.data, args.whisper)
        X, meta, extract_s = frames_of(params, args.workdir)
        print(f"{kind}: {len(X)} clips, frames {X.shape[1:]}, extraction {extract_s:.0f} s (cached runs: ~0)",
              flush=True)
        out = cv_run(params, X, meta)
        print(f"{kind}: 5-fold CV {out['cv_s']:.0f} s, fold-mean UAR {out['fold_uar']:.4f}, pooled UAR "
              f"{out['pooled_uar']:.4f}, load average {os.getloadavg()[0]:.2f}", flush=True)
        if out["layer_weights"][0]:
            for k, w in enumerate(out["layer_weights"]):
                print(f"  fold {k + 1} layer weights: {' '.join(f'{v:.3f}' for v in w)}")


if __name__ == "__main__":
    main()
