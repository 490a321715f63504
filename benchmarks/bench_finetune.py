"""Fine-tuning (``classifier: finetune``): training throughput, and quality on RAVDESS.

    python benchmarks/bench_finetune.py speed --data ../shared/data/ravdess-speech-16k --whisper /tmp/whisper-base
    python benchmarks/bench_finetune.py quality --data ... --whisper /tmp/whisper-base --folds 1 --asr 0 0.1

speed: ``--clips`` RAVDESS clips (the prepare stage's manifest, a seeded sample), fine-tuned with the
default ``finetune`` params (batch 8, CTC head on, convolutional front end frozen) for ``--steps``
optimizer steps after one warm-up step, for Whisper-base and for a randomly initialised WavLM-Large
(WavLM-Large's configuration saved with ``save_pretrained``: the same compute as the real weights).
Prints training throughput in audio-seconds per second (forward, backward and optimizer step) and
the peak resident memory; on CUDA when one is visible (``finetune.device: auto``).

quality: speaker-independent CV of Whisper-base fine-tuning on RAVDESS through
``ser.models.cv.cross_validate``, as the train stage fits a fold, for each ``--asr`` weight (the
multi-task ablation); ``--folds`` evaluates only the first N of the 5 folds (``cv.max_folds``), and
the protocol printed says so. Audio goes through ``ser.features.extract.extract`` (the audio
extractor, cached under ``--workdir``). ``--baseline`` adds the frozen encoder (Whisper-base layer 3,
mean-pooled) + SVM on the same folds; ``--asr`` with no value skips the fine-tuning.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ser import features  # noqa: E402
from ser.config import Params, load_params  # noqa: E402
from ser.corpora.manifest import prepare  # noqa: E402
from ser.features.extract import extract  # noqa: E402
from ser.models import classifiers  # noqa: E402
from ser.models.cv import cross_validate, plan  # noqa: E402


def params_for(data: Path, model: str, extractor: str = "whisper", **finetune) -> Params:
    base = load_params(ROOT / "params.yaml").model_dump()
    base.update(dataset="ravdess", classifier="finetune")
    base["data"] = {**base["data"], "dir": str(data)}
    base["augment"] = {**base["augment"], "n_augmentations": 0}
    base["trust"] = {**base["trust"], "novelty": "msp"}
    base["features"] = {**base["features"], "extractor": extractor, "model": model}
    base["finetune"] = {**base["finetune"], **finetune}
    return Params.model_validate(base)


def audio_of(params: Params, workdir: Path, clips: int | None = None):
    manifest, _, _ = prepare(params)
    if clips:
        manifest = manifest.sample(clips, random_state=0).reset_index(drop=True)
    result = extract(manifest, features.build(params, audio=True), workdir / "cache", None, params.seed,
                     params.features.batch_seconds, params.data.workers, 0.05,
                     frames_path=workdir / f"audio-{len(manifest)}.npy")
    meta = result.meta.merge(manifest[["clip_id", "text"]], on="clip_id", how="left")
    return result.X, meta


def wavlm_large(dest: Path) -> Path:
    """WavLM-Large's architecture (24 layers, 1024 wide, layer-norm front end) with random weights."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

    torch.manual_seed(0)
    config = WavLMConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                         feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=False)
    WavLMModel(config).save_pretrained(dest)
    Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(dest)
    return dest


def throughput(params: Params, X, meta, steps: int) -> tuple[float, float]:
    """Audio-seconds per second over ``steps`` optimizer steps after a warm-up step, and peak RSS (MB)."""
    import torch

    from ser.finetune.losses import Losses, crops
    from ser.finetune.network import prepare_for_training
    from ser.models.classifiers.torch_training import balanced_weights

    model = classifiers.get("finetune").build(params, 0)
    model.params_ = s = model._settings()
    labels = sorted(meta["label"].unique())
    codes = meta["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    texts = [str(t) for t in meta["text"].fillna("")]
    from ser.finetune import text

    model.vocab_ = text.Vocabulary.of(text.normalise(t) for t in texts).symbols
    model._build(len(labels))
    net = model.net_
    trainable = prepare_for_training(net, s) + list(net.heads().parameters())
    optimizer = torch.optim.AdamW(trainable, lr=s.backbone_lr)
    losses = Losses(s, torch.from_numpy(balanced_weights(codes, len(labels))), model.vocab_, 16000)
    rng = np.random.default_rng(0)
    net.train()
    heard, start = 0.0, 0.0
    for step in range(steps + 1):
        if step == 1:
            heard, start = 0.0, time.perf_counter()
        for _ in range(s.accumulate):
            index = rng.choice(len(X), s.batch_size, replace=False)
            waves, whole = crops(X, index, s.max_seconds, rng)
            with torch.autocast("cuda", enabled=model.device_ == "cuda"):
                out = net(waves)
                loss = losses(out, torch.from_numpy(codes[index]).to(model.device_), waves,
                              [text.normalise(texts[i]) if w else "" for i, w in zip(index, whole)])
            (loss / s.accumulate).backward()
            heard += sum(len(w) for w in waves) / 16000
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if model.device_ == "cuda":
        torch.cuda.synchronize()
    return heard / (time.perf_counter() - start), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def speed(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        encoders = {"Whisper-base": ("whisper", str(args.whisper))} if args.whisper else {}
        encoders["WavLM-Large (random weights)"] = ("ssl", str(wavlm_large(work / "wavlm-large")))
        for name, (extractor, model) in encoders.items():
            params = params_for(args.data, model, extractor, checkpoint_dir=str(work / "checkpoints"))
            X, meta = audio_of(params, work, args.clips)
            rate, peak = throughput(params, X, meta, args.steps)
            print(f"{name}: {rate:.1f} audio-s/s training ({args.steps} steps of {params.finetune.batch_size} x "
                  f"{params.finetune.accumulate} clips), peak RSS {peak:.0f} MB", flush=True)


def frozen_baseline(args, workdir: Path) -> None:
    """The same folds with the frozen encoder: Whisper-base layer 3, mean-pooled, + SVM (the Results row)."""
    from ser.evaluation.metrics import scores

    base = params_for(args.data, str(args.whisper), "whisper").model_dump()
    base.update(classifier="svm", features={**base["features"], "layers": 3, "pooling": "mean"})
    params = Params.model_validate(base)
    manifest, _, _ = prepare(params)
    result = extract(manifest, features.build(params), workdir / "cache", None, params.seed,
                     params.features.batch_seconds, params.data.workers, 0.05)
    X, meta = result.X, result.meta
    labels = sorted(meta["label"].unique())
    y = meta["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    cv = plan(meta["speaker"].to_numpy(), params.cv.folds, "speaker", args.folds)
    module = classifiers.get("svm")
    out = cross_validate(X, meta, labels, lambda rows, k: (classifiers.fit(module.build(params, params.seed), X[rows],
                                                                           y[rows], meta.iloc[rows]), {}), cv,
                         params.seed)
    pooled = scores(out.oof["actual"], out.oof["predicted"], labels)
    print(f"frozen Whisper-base layer 3 + SVM: UAR {pooled['uar']:.3f} pooled over {len(out.oof)} test clips, folds "
          f"{[round(f['uar'], 3) for f in out.folds]}; {cv.protocol}", flush=True)


def quality(args) -> None:
    from ser.evaluation.metrics import scores

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-finetune-"))
    if args.baseline:
        frozen_baseline(args, workdir)
    for alpha in args.asr:
        params = params_for(args.data, str(args.whisper), "whisper", alpha_asr=alpha, max_epochs=args.epochs,
                            checkpoint_dir=str(workdir / "checkpoints"))
        X, meta = audio_of(params, workdir)
        labels = sorted(meta["label"].unique())
        y = meta["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy()
        cv = plan(meta["speaker"].to_numpy(), params.cv.folds, "speaker", args.folds)
        def fit_fold(rows, k, params=params, X=X, y=y, meta=meta):
            model = classifiers.get("finetune").build(params, params.seed)
            return classifiers.fit(model, X[rows], y[rows], meta.iloc[rows]), {}

        start = time.perf_counter()
        result = cross_validate(X, meta, labels, fit_fold, cv, params.seed)
        pooled = scores(result.oof["actual"], result.oof["predicted"], labels)
        folds = [round(f["uar"], 3) for f in result.folds]
        print(f"alpha_asr {alpha}: UAR {pooled['uar']:.3f} pooled over {len(result.oof)} test clips, folds {folds}, "
              f"{time.perf_counter() - start:.0f} s; {cv.protocol}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["speed", "quality"])
    parser.add_argument("--data", type=Path, required=True, help="RAVDESS folder")
    parser.add_argument("--whisper", type=Path, help="Whisper-base folder (../shared/tools/whisper_base_offline.py)")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--folds", type=int, default=1, help="quality: evaluate the first N folds")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--asr", type=float, nargs="*", default=[0.0, 0.1], help="quality: alpha_asr values")
    parser.add_argument("--workdir", type=Path, help="quality: audio cache and checkpoints (default: a temp folder)")
    parser.add_argument("--baseline", action="store_true", help="quality: frozen encoder + SVM, same folds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.mode == "quality" and not args.whisper:
        parser.error("quality needs --whisper")
    speed(args) if args.mode == "speed" else quality(args)


if __name__ == "__main__":
    main()
