"""What choosing the encoder layers inside each fold costs: the default recipe against one fixed layer.

    python benchmarks/bench_layer_choice.py --data ../shared/data/ravdess-speech-16k --whisper /tmp/whisper-base
    python benchmarks/bench_layer_choice.py ... --copies 2     # with the default two augmented copies per clip

One run, on one corpus: prepare's manifest, then the library's extraction (``ser.features.extract.extract``)
of Whisper-base with ``features.layers: all`` (every layer's pooled vector: the default) and with
``features.layers: 3`` (one layer: only the first 3 of the 6 encoder layers run), each into an empty cache;
then the train stage's function (``ser.models.train.train``: CV, final fit, calibration, novelty) on the
all-layer vectors with the default ``select`` (the best 4 of 7 layers by inner 3-fold speaker-grouped CV in
every training fold) and with ``select.layers: [3]``. Prints wall times, audio seconds per second and UAR.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the train stage sets it

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from ser import features  # noqa: E402
from ser.config import Params  # noqa: E402
from ser.corpora.manifest import build_manifest  # noqa: E402
from ser.features.extract import extract, feature_params  # noqa: E402
from ser.models.train import train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the RAVDESS folder")
    parser.add_argument("--dataset", default="ravdess")
    parser.add_argument("--whisper", type=Path, required=True, help="Whisper-base folder")
    parser.add_argument("--copies", type=int, default=0, help="augmented copies per clip (params.yaml: 2)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    base = {"dataset": args.dataset, "data": {"dir": str(args.data), "workers": 2},
            "augment": {"n_augmentations": args.copies},
            "features": {"extractor": "whisper", "model": str(args.whisper), "device": "cpu"}}
    manifest, _, summary = build_manifest(Params.model_validate(base))
    audio = float(manifest["duration"].sum()) * (1 + args.copies)
    print(f"{args.dataset}: {len(manifest)} clips, {summary['speakers']} speakers, {audio / 60:.1f} min of audio "
          f"with {args.copies} copies; load {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        embedded = {}
        for layers in ("all", 3):
            params = Params.model_validate({**base, "features": {**base["features"], "layers": layers}})
            extractor = features.build(params)
            start = time.perf_counter()
            result = extract(manifest, extractor, Path(tmp) / f"cache-{layers}", params.augment, params.seed,
                             params.features.batch_seconds, workers=2)
            seconds = time.perf_counter() - start
            embedded[layers] = (params, result, {"identity": extractor.identity(), "blocks": features.blocks(extractor),
                                                 "feature_params": feature_params(params)})
            print(f"extract, features.layers: {layers}: {seconds:.1f} s, {audio / seconds:.0f} audio-s/s, "
                  f"X {result.X.shape}", flush=True)
        params, result, described = embedded["all"]
        durations = manifest.set_index("clip_id").loc[result.meta.loc[result.meta["aug"] == 0, "clip_id"], "duration"]
        for name, select in (("default: best 4 of 7 chosen in-fold", {}), ("select.layers: [3]", {"layers": [3]})):
            run = Params.model_validate({**base, "select": select})
            start = time.perf_counter()
            trained = train(result.X, result.meta, run, described, Path(tmp) / "models", durations)
            seconds = time.perf_counter() - start
            oof = trained.oof
            uar = balanced_accuracy_score(oof["actual"], oof["predicted"])
            print(f"train ({name}): {seconds:.1f} s, UAR {uar:.4f}, final layers "
                  f"{trained.summary.get('layers', {}).get('chosen')}; load {os.getloadavg()[0]:.1f}", flush=True)
        np.testing.assert_allclose(embedded[3][1].X, result.X[:, 3 * 512:4 * 512], atol=1e-5)  # layer 3 = its block
        print("layer 3's vectors from the all-layer extraction equal those of features.layers: 3", flush=True)


if __name__ == "__main__":
    main()
