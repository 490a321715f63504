"""Extraction throughput and memory: the whole pipeline against the bare model forward pass.

    python benchmarks/bench_extract.py                  # WavLM-Large-sized, random weights, 16 clips
    python benchmarks/bench_extract.py --clips 64 --model /path/to/wavlm-large

Without ``--model``, a randomly initialised model with the published microsoft/wavlm-large
architecture (24 layers, 1024 dims, 16 heads, 4096 FFN, 7 x 512 conv front end with layer norm,
stable layer norm, no conv bias; ~316 M parameters) is written to a temp folder by a child
process, so the numbers below never include building it. The clips are synthetic with
CREMA-D-like lengths (uniform 1.3-5 s, 16 kHz WAV files on disk).

Measured on the same clips, alternating between the three every ``--chunk`` clips (in rotating
order, so that load from other processes on a shared machine hits all three alike):
- pipeline: ``ser.features.extract.extract`` from the WAV files (reading threads, normalisation, length-sorted
  batches capped by ``--batch-seconds``, masked pooling, cache writes), into an empty cache;
- bare, batched: ``model(...)`` alone, in length-sorted batches by the same rule;
- bare, one clip per call: ``model(...)`` per clip, no padding at all.
The bare variants decode their clips in the timed section too (about 1 ms a clip, no threads). It
prints audio seconds per wall-clock second and per CPU second of each, the pipeline's speed as a
share of the bare batched pass (overall and the median over chunks, which is robust to load
spikes), the share of processed samples that were padding (here, and for a CREMA-D-sized corpus
from the batching rule alone), and the peak resident memory (VmHWM) of this process. Then, for
memory alone, the pipeline runs as the extract stage does (one call over the clips, in their
random order, in a fresh process) over half of the clips and over all of them, and each child
reports its own peak: memory that stays flat shows as two equal figures.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# the bare forward passes hit the warning that SslEncoder silences (WavLM: float bias + bool padding mask)
warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask and attn_mask")

WAVLM_LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                   conv_dim=(512,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
                   conv_bias=False, feat_extract_norm="layer", do_stable_layer_norm=True,
                   num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16)


def make_model(dest: Path) -> None:
    """A WavLM-Large-shaped model with random weights and WavLM-Large's preprocessor config."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

    torch.manual_seed(0)
    WavLMModel(WavLMConfig(**WAVLM_LARGE)).save_pretrained(dest)
    Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(dest)


def peak_rss_mb() -> float:
    status = Path("/proc/self/status")
    for line in status.read_text().splitlines() if status.exists() else []:
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return peak / (2**20 if sys.platform == "darwin" else 1024)


def pipeline_peak(model: str, manifest_csv: str, n: int, batch_seconds: float, device: str) -> None:
    """(child process) Extract the first ``n`` clips of the manifest into an empty cache; print VmHWM."""
    import pandas as pd

    from ser.config import AugmentParams
    from ser.features.extract import extract
    from ser.features.ssl import SslEncoder

    manifest = pd.read_csv(manifest_csv, dtype={"clip_id": str}).head(n)
    extractor = SslEncoder(model, layers="last", pooling="mean", device=device)
    with tempfile.TemporaryDirectory() as cache:
        out = extract(manifest, extractor, Path(cache), AugmentParams(n_augmentations=0), batch_seconds=batch_seconds)
    assert out.failed.empty and len(out.X) == n
    print(f"{peak_rss_mb():.0f}")


def make_clips(folder: Path, n: int, seed: int = 0):
    """n speech-like WAV clips of 1.3-5 s, and their manifest."""
    import numpy as np
    import pandas as pd
    import soundfile as sf

    rng = np.random.default_rng(seed)
    rows = []
    for i, seconds in enumerate(rng.uniform(1.3, 5.0, n)):
        t = np.arange(int(seconds * 16000)) / 16000
        f0 = rng.uniform(100, 250) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(1, 4) * t))
        wave = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 16000) / k for k in range(1, 6))
        wave = 0.1 * wave * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)) + 0.005 * rng.standard_normal(len(t))
        path = folder / f"clip{i:04d}.wav"
        sf.write(path, wave.astype(np.float32), 16000)
        rows.append({"clip_id": path.stem, "path": str(path), "label": "x", "speaker": "s",
                     "sha1": hashlib.sha1(path.read_bytes()).hexdigest(), "duration": len(t) / 16000})
    return pd.DataFrame(rows)


def corpus_padding(batch_seconds: float, clips: int = 7442, copies: int = 2, seed: int = 0) -> tuple[float, float]:
    """Padding share and mean batch size of length_batches on a CREMA-D-sized corpus (lengths only):
    uniform 1.3-5 s clips, each with ``copies`` time-stretched copies (0.9-1.1), in expected-length order."""
    import numpy as np

    from ser.features.stream import Job, length_batches, padding

    rng = np.random.default_rng(seed)
    expected = np.repeat(rng.uniform(1.3, 5.0, clips), copies + 1)
    actual = expected / np.where(np.arange(len(expected)) % (copies + 1) == 0, 1.0,
                                 rng.uniform(0.9, 1.1, len(expected)))
    items = ((Job("", "", ""), np.broadcast_to(np.float32(0), (int(a * 16000),)))  # a length, no memory
             for _, a in sorted(zip(expected, actual)))
    batches = list(length_batches(items, int(batch_seconds * 16000)))
    padded, total = map(sum, zip(*(padding([len(w) for _, w in b]) for b in batches)))
    return padded / total, len(expected) / len(batches)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=16, help="number of clips (default 16, ~50 s of audio)")
    ap.add_argument("--model", help="a local model folder (default: random WavLM-Large in a temp folder)")
    ap.add_argument("--batch-seconds", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=2, help="reading threads")
    ap.add_argument("--device", default="auto", help="auto (CUDA fp16, then MPS, then CPU) | cuda | mps | cpu")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=4, help="clips per alternation between pipeline and bare")
    args = ap.parse_args()

    import torch

    from ser.config import AugmentParams
    from ser.corpora.audio import load
    from ser.features.extract import extract
    from ser.features.ssl import SslEncoder
    from ser.features.stream import Job, length_batches

    torch.set_num_threads(args.threads)
    cap = int(args.batch_seconds * 16000)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None:
            model = str(tmp / "wavlm-large-random")
            print("writing a random WavLM-Large to a temp folder ...", flush=True)
            subprocess.run([sys.executable, __file__, "--write-model", model], check=True)
        (tmp / "clips").mkdir()
        manifest = make_clips(tmp / "clips", args.clips)
        manifest.to_csv(tmp / "manifest.csv", index=False)  # random order, for the memory runs
        manifest = manifest.sort_values("duration", ignore_index=True)
        audio = float(manifest["duration"].sum())
        extractor = SslEncoder(model, layers="last", pooling="mean", device=args.device)
        device, dtype = extractor.device, extractor.dtype
        chunks = [manifest.iloc[i:i + args.chunk] for i in range(0, len(manifest), args.chunk)]

        @torch.inference_mode()
        def bare(groups: list[list]) -> None:
            for group in groups:
                lengths = torch.tensor([len(w) for w in group])
                x = torch.zeros(len(group), int(lengths.max()))
                for row, w in zip(x, group):
                    row[: len(w)] = torch.from_numpy(w)
                mask = (torch.arange(x.shape[1])[None] < lengths[:, None]).long()
                extractor.model(x.to(device, dtype), attention_mask=mask.to(device))
            if device.type in ("cuda", "mps"):  # the pipeline's vectors come back to the CPU; so must these
                getattr(torch, device.type).synchronize()

        def pipeline(chunk, r: int) -> dict:
            out = extract(chunk, extractor, tmp / f"cache{r}", AugmentParams(n_augmentations=0),
                          batch_seconds=args.batch_seconds, workers=args.workers)
            assert out.failed.empty and len(out.X) == len(chunk)
            return out.stats

        def batched(chunk, r: int) -> None:
            waves = [(Job("", "", ""), load(p)) for p in chunk["path"]]
            bare([[w for _, w in b] for b in length_batches(waves, cap)])

        def child_peak(n: int) -> float:
            cmd = [sys.executable, __file__, "--pipeline-peak", model, str(tmp / "manifest.csv"), str(n),
                   str(args.batch_seconds), args.device]
            return float(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()[-1])

        def single(chunk, r: int) -> None:
            bare([[load(p)] for p in chunk["path"]])

        bare([[load(manifest["path"][0])[:16000]]])  # warm-up
        runs = {"pipeline": pipeline, "bare, batched": batched, "bare, one clip per call": single}
        wall = {name: [] for name in runs}  # one entry per chunk and round
        cpu = {name: [] for name in runs}
        padded = processed = 0
        for r in range(args.rounds):
            for c, chunk in enumerate(chunks):  # alternate, rotating the order, so load spikes hit all alike
                for name in list(runs)[c % 3:] + list(runs)[:c % 3]:
                    start, start_cpu = time.perf_counter(), time.process_time()
                    stats = runs[name](chunk, r)
                    wall[name].append(time.perf_counter() - start)
                    cpu[name].append(time.process_time() - start_cpu)
                    if name == "pipeline":
                        padded += stats["padded_seconds"]
                        processed += stats["audio_seconds"] + stats["padded_seconds"]
            print(f"round {r + 1}: " + ", ".join(f"{k} {audio * (r + 1) / sum(v):.2f}" for k, v in wall.items()),
                  flush=True)
        print("memory: the pipeline alone over half of the clips, then all, each in a fresh process ...", flush=True)
        peaks = {n: child_peak(n) for n in (args.clips // 2, args.clips)}

    import numpy as np

    total = audio * args.rounds
    per_chunk = np.median(np.array(wall["bare, batched"]) / np.array(wall["pipeline"]))
    corpus, per_batch = corpus_padding(args.batch_seconds)
    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores{gpu}, torch {torch.__version__}, "
          f"{args.threads} torch threads, {args.workers} reading threads; device {device}, {dtype}")
    print(f"model: {'random WavLM-Large' if args.model is None else args.model}; {args.clips} clips, "
          f"{audio:.1f} s of audio (1.3-5 s each), {args.rounds} rounds; batch_seconds {args.batch_seconds:g}")
    print(f"  {'':<24} {'audio-s/s':>9} {'audio-s/CPU-s':>14}")
    for name in runs:
        print(f"  {name:<24} {total / sum(wall[name]):9.2f} {total / sum(cpu[name]):14.2f}")
    ratio = sum(wall["bare, batched"]) / sum(wall["pipeline"])
    ratio_cpu = sum(cpu["bare, batched"]) / sum(cpu["pipeline"])
    print(f"  pipeline / bare batched: {ratio:.1%} of its speed (median over chunks {per_chunk:.1%}; "
          f"by CPU time {ratio_cpu:.1%})")
    print(f"  padding, these clips       {padded / processed:6.1%} of processed samples")
    print(f"  padding, CREMA-D-sized     {corpus:6.1%} (7442 clips + 2 stretched copies each; "
          f"{per_batch:.1f} clips per batch)")
    print(f"  peak RSS, this process     {peak_rss_mb():6.0f} MB (model + all three variants)")
    print("  peak RSS, pipeline alone   " + ", ".join(f"{mb:.0f} MB over {n} clips" for n, mb in peaks.items()))
    if device.type == "cuda":
        print(f"  peak GPU memory            {torch.cuda.max_memory_allocated(device) / 2**20:6.0f} MB")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write-model":
        make_model(Path(sys.argv[2]))
    elif len(sys.argv) == 7 and sys.argv[1] == "--pipeline-peak":
        pipeline_peak(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), sys.argv[6])
    else:
        main()
