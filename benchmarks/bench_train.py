"""Time the train stage's cross-validation on synthetic embeddings the size of CREMA-D.

    python benchmarks/bench_train.py --classifier all     # svm, xgboost, mlp in turn
    python benchmarks/bench_train.py --classifier svm --final

7442 clips x 1024 dims, two augmented copies per clip (22 326 rows; copies only on the training
side), 91 speakers, 6 overlapping emotion classes shifted per speaker. Runs exactly what the stage
runs per fold (``build`` + ``ser.models.classifiers.fit`` with the speakers routed to the classifier,
default params.yaml settings, no tuning) through ``ser.models.cv.cross_validate``; ``--final`` also times
the fit on all rows. Reports wall time, UAR, peak memory and the machine's load (a busy machine
makes every number slower).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the train stage sets it

import argparse
import logging
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from embedding_fixtures import make_embeddings  # noqa: E402

from ser.config import load_params  # noqa: E402
from ser.models import classifiers  # noqa: E402
from ser.models.classifiers.devices import cpu_cores  # noqa: E402
from ser.models.cv import cross_validate, plan  # noqa: E402

NAMES = ("svm", "xgboost", "mlp")


def run(name: str, X: np.ndarray, meta, folds: int, final: bool) -> dict:
    params = load_params(ROOT / "params.yaml").model_copy(update={"classifier": name})
    module = classifiers.get(name)
    labels = sorted(meta["label"].unique())
    y = meta["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy()

    def fit_fold(rows: np.ndarray, k: int):
        return classifiers.fit(module.build(params, params.seed), X[rows], y[rows], meta.iloc[rows]), {}

    load_before, cpu_before = os.getloadavg()[0], _cpu_seconds()
    start = time.perf_counter()
    result = cross_validate(X, meta, labels, fit_fold, plan(meta["speaker"].to_numpy(), folds, "speaker"), params.seed)
    seconds = time.perf_counter() - start
    out = {"classifier": name, "cv_s": seconds, "cpu_s": _cpu_seconds() - cpu_before,
           "uar": float(np.mean([f["uar"] for f in result.folds])), "load": (load_before, os.getloadavg()[0])}
    if final:
        start = time.perf_counter()
        classifiers.fit(module.build(params, params.seed), X, y, meta)
        out["final_s"] = time.perf_counter() - start
    return out


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classifier", choices=[*NAMES, "all"], default="all")
    parser.add_argument("--clips", type=int, default=7442)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--speakers", type=int, default=91)
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--separation", type=float, default=0.5,
                        help="class separation (0.5: UAR ~0.7, like good SSL embeddings of CREMA-D)")
    parser.add_argument("--final", action="store_true", help="also time the final fit on all rows")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    X, meta = make_embeddings(clips=args.clips, dim=args.dim, speakers=args.speakers, classes=args.classes,
                              copies=args.copies, separation=args.separation, latent=32, seed=0)
    print(f"{len(X)} rows ({args.clips} clips + {args.copies} copies each) x {args.dim} dims, "
          f"{args.speakers} speakers, {args.classes} classes; {args.folds}-fold speaker CV; "
          f"{cpu_cores()} cores, {platform.processor() or platform.machine()}", flush=True)
    for name in NAMES if args.classifier == "all" else (args.classifier,):
        r = run(name, X, meta, args.folds, args.final)
        final = f", final fit {r['final_s']:.0f} s" if "final_s" in r else ""
        print(f"{name}: {args.folds}-fold CV {r['cv_s']:.0f} s ({r['cv_s'] / 60:.1f} min, "
              f"CPU {r['cpu_s']:.0f} s){final}, UAR {r['uar']:.3f}; "
              f"load average {r['load'][0]:.1f} -> {r['load'][1]:.1f}; "
              f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", flush=True)


if __name__ == "__main__":
    main()
