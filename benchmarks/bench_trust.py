"""Open-set rejection: does a model reject non-speech and keep the speech of speakers and studios it never heard?

    python benchmarks/bench_trust.py corpora --data ../shared/data --whisper /tmp/whisper-base [--set KEY=VALUE ...]
    python benchmarks/bench_trust.py actors --data ../shared/data/ravdess-speech-16k [--whisper /tmp/whisper-base]

``corpora`` (the defaults of params.yaml: Whisper-base, every layer, the layer choice, the SVM, trust.speech and
trust.novelty_gate as they are): for every corpus of ``--data`` found (RAVDESS, EMOVO, nEMO, URDU), a model trained
on it alone, and one trained on the other corpora pooled (``dataset: multi``, leave-one-corpus-out, so its novelty
threshold is set on held-out corpora; the four classes every corpus has), predict (``Predictor.predict``, predict's
code path) the generated non-speech files and ``--per-corpus`` clips of every corpus the model never heard. Per
model: the share of non-speech rejected (``unknown``), the AUROC of the speech-presence score and of the novelty
score (non-speech against the other corpora's speech), and the share of each other corpus's speech rejected.

``actors`` (below):

For MFCC statistics and (with ``--whisper``) Whisper-base layer 3, each with the SVM: four RAVDESS actors
(two male, two female, seeded) are held out; the model is trained on the other 20 by the train stage's
function (``ser.models.train.train``: 5-fold speaker-independent CV, calibration, novelty threshold at
the default 5% false rejection of out-of-fold clips). Then ``Predictor.predict`` (predict's code path)
scores the held-out actors' clips and generated non-speech files: white and brown noise, pure tones,
click trains, music-like chords (triads with harmonics and an envelope) and room tone (quiet pink noise).
For every novelty method (``trust.novelty``; the fitted classifier is the same; no speech gate and
``trust.novelty_gate: speakers``, so that the threshold alone decides) it prints the AUROC of the score
(non-speech against held-out speech), the share of each kind rejected (``unknown``) and the cross-fitted
false rejection on the training actors: unseen actors of the same corpus, the case ``corpora`` goes beyond.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from trained_fixtures import train_models  # noqa: E402

from ser.config import Params, load_params  # noqa: E402
from ser.corpora.manifest import prepare  # noqa: E402
from ser.inference.predict import Predictor  # noqa: E402
from ser.models import model_card  # noqa: E402
from ser.models.calibration import calibrated_oof  # noqa: E402
from ser.trust.crossfit import fit_novelty  # noqa: E402
from ser.trust.novelty import METHODS  # noqa: E402

SR = 16000
KINDS = ("white noise", "brown noise", "tone", "clicks", "chord", "room tone")


def non_speech(kind: str, rng: np.random.Generator, seconds: float = 3.0) -> np.ndarray:
    """One generated clip of ``kind`` at a random level (peak -25 .. -3 dBFS; room tone about -50 dBFS RMS)."""
    t = np.arange(int(seconds * SR)) / SR
    if kind == "white noise":
        x = rng.standard_normal(len(t))
    elif kind in ("brown noise", "room tone"):
        spectrum = np.fft.rfft(rng.standard_normal(len(t)))
        f = np.maximum(np.fft.rfftfreq(len(t), 1 / SR), 20.0)
        x = np.fft.irfft(spectrum / (f if kind == "brown noise" else np.sqrt(f)), len(t))
    elif kind == "tone":
        x = np.sin(2 * np.pi * rng.uniform(100, 4000) * t)
    elif kind == "clicks":
        x = np.zeros(len(t))
        x[:: int(SR / rng.uniform(2, 40))] = 1.0
    else:  # chord: a major or minor triad, 4 harmonics each, attack-decay envelope per note onset
        root = 110 * 2 ** (rng.integers(0, 24) / 12)
        third = 4 if rng.random() < 0.5 else 3
        x = sum(sum(np.sin(2 * np.pi * root * 2 ** (s / 12) * h * t) / h for h in range(1, 5)) for s in (0, third, 7))
        beat = (t * rng.uniform(1, 3)) % 1
        x *= np.minimum(beat / 0.02, 1) * np.exp(-3 * beat)
    x = x / np.max(np.abs(x))
    if kind == "room tone":
        return (x * 10 ** (-50 / 20) / np.sqrt(np.mean(x ** 2)) * 0.5).astype(np.float32)
    return (x * 10 ** (rng.uniform(-25, -3) / 20)).astype(np.float32)


def write_non_speech(folder: Path, per_kind: int, seed: int = 1) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    kinds = {}
    for kind in KINDS:
        for i in range(per_kind):
            path = folder / f"{kind.replace(' ', '_')}-{i:02d}.wav"
            sf.write(path, non_speech(kind, rng), SR)
            kinds[str(path)] = kind
    return kinds


def auroc(outside: np.ndarray, inside: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.r_[np.ones(len(outside)), np.zeros(len(inside))], np.r_[outside, inside]))


def held_out_actors(speakers: pd.Series, seed: int = 0) -> list[str]:
    """Two male (odd) and two female (even) RAVDESS actors."""
    rng = np.random.default_rng(seed)
    actors = sorted(speakers.unique())
    odd = [a for a in actors if int("".join(c for c in a if c.isdigit())) % 2]
    even = [a for a in actors if a not in odd]
    return sorted([*rng.choice(odd, 2, replace=False), *rng.choice(even, 2, replace=False)])


def params_for(data: Path, extractor: str, whisper: Path | None) -> Params:
    base = load_params(ROOT / "params.yaml").model_dump()
    base.update(dataset="ravdess", classifier="svm")
    base["data"] = {**base["data"], "dir": str(data)}
    base["augment"] = {**base["augment"], "n_augmentations": 0}
    base["features"] = {**base["features"], "extractor": extractor,
                        **({"model": str(whisper), "layers": 3} if extractor == "whisper" else {})}
    base["trust"] = {**base["trust"], "speech": "none", "novelty_gate": "speakers"}  # the novelty score alone
    return Params.model_validate(base)


def evaluate(name: str, params: Params, work: Path, files: dict[str, str]) -> None:
    manifest, _, _ = prepare(params)
    held = held_out_actors(manifest["speaker"])
    train_rows = manifest[~manifest["speaker"].isin(held)].reset_index(drop=True)
    fit, embedded = train_models(work, train_rows, params)
    models = work / "models"
    card = model_card.read(models)
    labels = card.labels
    codes = embedded.meta["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    oof_proba = calibrated_oof(fit.oof, labels, fit.summary["calibration"])
    from ser.models.cv import plan

    cv = plan(embedded.meta.loc[embedded.meta["aug"] == 0, "speaker"].to_numpy(), params.cv.folds, "speaker")
    speech = dict.fromkeys(manifest.loc[manifest["speaker"].isin(held), "path"], "held-out actors")
    print(f"\n{name} + SVM, trained on {len(train_rows)} clips of {train_rows['speaker'].nunique()} actors; held out "
          f"{', '.join(held)} ({len(speech)} clips); {len(files)} non-speech files", flush=True)
    print(f"{'method':<12} {'FRR oof':>8} {'AUROC':>6} {'rejected: speech':>17} {'non-speech':>10}  "
          + "  ".join(f"{k:>11}" for k in KINDS), flush=True)
    base = Predictor.load(models)
    for method in METHODS:
        trust = params.trust.model_copy(update={"novelty": method})
        fitted = fit_novelty(embedded.X, embedded.meta, codes, oof_proba, cv, params.seed, trust)
        summary = {k: fitted.summary[k] for k in model_card.NoveltyCard.model_fields}
        card_m = card.model_copy(update={"novelty": model_card.NoveltyCard(**summary)})
        predictor = Predictor(base.extractor, base.model, card_m, fitted.novelty, workers=params.data.workers)
        results = {r.path: r for r in predictor.predict([*speech, *files])}
        failed = [p for p, r in results.items() if r.error]
        if failed:
            raise RuntimeError(f"predict failed on {len(failed)} files, e.g. {failed[0]}: {results[failed[0]].error}")
        score = {p: r.novelty for p, r in results.items()}
        inside = np.array([score[p] for p in speech])
        outside = np.array([score[p] for p in files])
        per_kind = [np.mean([results[p].unknown for p, k in files.items() if k == kind]) for kind in KINDS]
        print(f"{method:<12} {fitted.summary['false_rejection_cross_fitted']:>8.1%} {auroc(outside, inside):>6.3f} "
              f"{np.mean([results[p].unknown for p in speech]):>17.1%} "
              f"{np.mean([results[p].unknown for p in files]):>10.1%}  "
              + "  ".join(f"{r:>11.0%}" for r in per_kind), flush=True)
        of_kind = {kind: np.array([score[p] for p, k in files.items() if k == kind]) for kind in KINDS}
        kinds_auroc = "  ".join(f"{kind} {auroc(of_kind[kind], inside):.3f}" for kind in KINDS)
        print(f"{'':<12} AUROC per kind: {kinds_auroc}", flush=True)


COMMON = ["angry", "happy", "neutral", "sad"]  # the classes every shared corpus has
SHARED = {"ravdess": "ravdess-speech-16k", "emovo": "emovo-16k", "nemo": "nemo-16k", "urdu": "urdu-16k"}


def corpus_params(name: str, data: Path, whisper: Path, pool: list[str] | None = None,
                  sets: list[str] = ()) -> Params:
    """params.yaml's defaults on Whisper-base, no augmentation, with ``sets`` (``KEY=VALUE``, as ``dvc exp run -S``),
    for corpus ``name`` or the corpora ``pool`` pooled (leave-one-corpus-out)."""
    base = load_params(ROOT / "params.yaml").model_dump()
    for item in sets:
        key, value = item.split("=", 1)
        *path, last = key.split(".")
        node = base
        for part in path:
            node = node[part]
        node[last] = yaml.safe_load(value)
    base["augment"] = {**base["augment"], "n_augmentations": 0}
    base["features"] = {**base["features"], "extractor": "whisper", "model": str(whisper)}
    if pool:
        base.update(dataset="multi", multi={"corpora": [{"name": c, "dataset": c, "dir": str(data / SHARED[c])}
                                                        for c in pool]})
        base["cv"] = {**base["cv"], "group_by": "corpus"}
        base["data"] = {**base["data"], "labels": COMMON}  # a class of one corpus only has no held-out test
    else:
        base.update(dataset=name)
        base["data"] = {**base["data"], "dir": str(data / SHARED[name])}
    return Params.model_validate(base)


def rejection(name: str, params: Params, work: Path, cache: Path, files: dict[str, str],
              others: dict[str, list[str]]) -> None:
    """Train on ``params``' corpus, predict the non-speech ``files`` and the other corpora's clips; print a row."""
    manifest, _, _ = prepare(params)
    fit, _ = train_models(work, manifest, params, cache)
    predictor = Predictor.load(work / "models", workers=params.data.workers)
    speech = {p: corpus for corpus, paths in others.items() for p in paths}
    results = {r.path: r for r in predictor.predict([*files, *speech])}
    failed = [p for p, r in results.items() if r.error]
    if failed:
        print(f"  {len(failed)} files failed, e.g. {failed[0]}: {results[failed[0]].error}", flush=True)
    ok = {p: r for p, r in results.items() if not r.error}
    novelty = fit.summary["novelty"]
    inside = [p for p in speech if p in ok]
    outside = [p for p in files if p in ok]
    present = np.array([ok[p].speech for p in outside]), np.array([ok[p].speech for p in inside])
    scores = np.array([ok[p].novelty for p in outside]), np.array([ok[p].novelty for p in inside])
    rejected = {corpus: np.mean([ok[p].unknown for p in paths if p in ok]) for corpus, paths in others.items()}
    medians = {corpus: np.median([ok[p].novelty for p in paths if p in ok]) for corpus, paths in others.items()}
    print(f"| {name} | {novelty['threshold_from']}: {'rejects' if novelty['applies'] else 'reported only'} | "
          f"{np.mean([ok[p].unknown for p in outside]):.0%} | {auroc(-present[0], -present[1]):.3f} | "
          f"{auroc(*scores):.3f} | " + ", ".join(f"{c}: {r:.1%}" for c, r in rejected.items()) + " | "
          f"{novelty['threshold']:.3g} | " + ", ".join(f"{c} {m:.3g}" for c, m in medians.items()) + " |", flush=True)


def corpora(args: argparse.Namespace) -> None:
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-trust-"))
    files = write_non_speech(work / "non-speech", args.per_kind)
    found = [c for c in SHARED if (args.data / SHARED[c]).is_dir()]
    rng = np.random.default_rng(0)
    sample = {}
    for c in found:
        paths = prepare(corpus_params(c, args.data, args.whisper, sets=args.set))[0]["path"].to_numpy()
        sample[c] = sorted(rng.choice(paths, min(args.per_corpus, len(paths)), replace=False))
    print(f"{len(files)} non-speech files ({', '.join(KINDS)}); {args.per_corpus} clips of each other corpus\n"
          "| trained on | novelty threshold | non-speech rejected | AUROC, speech presence | AUROC, novelty | "
          "other corpora's speech rejected | threshold | median novelty of the other corpora |\n"
          "|---|---|---|---|---|---|---|---|", flush=True)
    cache = work / "cache"
    for c in found:
        rejection(c, corpus_params(c, args.data, args.whisper, sets=args.set), work / c, cache, files,
                  {o: sample[o] for o in found if o != c})
    for c in found:
        rest = [o for o in found if o != c]
        if len(rest) >= 2:
            rejection(f"{' + '.join(rest)} (pooled)", corpus_params(c, args.data, args.whisper, rest, args.set),
                      work / f"pool-{c}", cache, files, {c: sample[c]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["corpora", "actors"])
    parser.add_argument("--data", type=Path, required=True,
                        help="corpora: the folder holding the corpora; actors: the RAVDESS folder")
    parser.add_argument("--whisper", type=Path, help="Whisper-base folder (../shared/tools/whisper_base_offline.py)")
    parser.add_argument("--per-kind", type=int, default=20, help="generated files per kind of non-speech")
    parser.add_argument("--per-corpus", type=int, default=200, help="corpora: clips of each other corpus predicted")
    parser.add_argument("--workdir", type=Path, help="feature caches and models (default: a temp folder)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="corpora: a params override, as dvc exp run -S (e.g. preprocess.vad=silero); repeatable")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.mode == "corpora":
        if args.whisper is None:
            parser.error("corpora: give --whisper (Whisper-base folder)")
        corpora(args)
        return
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-trust-"))
    files = write_non_speech(work / "non-speech", args.per_kind)
    evaluate("MFCC stats", params_for(args.data, "mfcc", None), work / "mfcc", files)
    if args.whisper:
        evaluate("Whisper-base layer 3", params_for(args.data, "whisper", args.whisper), work / "whisper", files)


if __name__ == "__main__":
    main()
