"""extract: data/manifest.csv -> embeddings/features.npz (X, clip_id, label, speaker, aug) + features.json,
and embeddings/frames.npy: with features.pooling: none the frame sequences (features.npz then holds
their offsets instead of X), else an empty array. With ``classifier: finetune`` (data/route.json: audio)
the clips' audio instead of an encoder's features (:mod:`ser.features.audio`). With ``features.normalize:
speaker`` (or ``corpus``) each speaker's (corpus's) vectors are standardised with that speaker's (corpus's) clips
(:mod:`ser.features.speaker_norm`).

Vectors live in embeddings/cache/ (outside DVC's outputs, so DVC never deletes it before a re-run):
a re-run computes only what a changed setting or a new clip needs.
"""

import logging

from ser import features
from ser.artifacts import read_table, write_json, write_npz
from ser.config import load_params, route
from ser.embeddings import FrameSet, write_frames
from ser.features.extract import extract, feature_params
from ser.features.speaker_norm import by_group, normalisation_groups
from ser.stage import run_stage

log = logging.getLogger("stages.extract")
CACHE = "embeddings/cache"
FRAMES = "embeddings/frames.npy"


def main() -> None:
    params = load_params()
    manifest = read_table("data/manifest.csv")
    audio = route(params)["input"] == "audio"  # classifier finetune: the clips' audio (data/route.json says so too)
    extractor = features.build(params, audio)  # loads the model: a missing one fails here, before any work
    f, a = params.features, params.augment
    what = "the audio" if audio else f"{f.extractor} features"
    log.info("extracting %s of %d clips + %d augmented copies each", what, len(manifest), a.n_augmentations)
    result = extract(manifest, extractor, CACHE, a, params.seed, f.batch_seconds, params.data.workers,
                     f.max_failed_fraction, FRAMES)
    X, meta = result.X, result.meta
    if f.normalize != "none":  # transductive: train labels every number it gives
        log.info("standardising each %s's vectors with that %s's own clips (features.normalize: %s)", f.normalize,
                 f.normalize, f.normalize)
        X = by_group(X, normalisation_groups(meta, manifest, f.normalize, params.dataset), meta["aug"].to_numpy() == 0,
                     f.normalize)
    if isinstance(X, FrameSet):
        data = {"offsets": X.offsets}
    else:
        data = {"X": X}
        write_frames(FRAMES, [], 0, (0, 0))
    write_npz("embeddings/features.npz", **data, **{c: meta[c].to_numpy(str) for c in ("clip_id", "label", "speaker")},
              aug=meta["aug"].to_numpy())
    copies = result.failed[result.failed["aug"] > 0]
    write_json("embeddings/features.json", {
        "identity": extractor.identity(),
        "feature_params": feature_params(params),  # copied into the model card by train
        "augment": {**a.model_dump(), "seed": params.seed} if a.n_augmentations else None,
        # several encoder layers' vectors side by side: which, so that train can choose among them
        "blocks": features.blocks(extractor),
        "rows": len(X), "dim": X.shape[-1], **({"layers": X.shape[1], "frames": int(X.lengths.sum())}
                                                if isinstance(X, FrameSet) else {}),
        "clips": int((meta["aug"] == 0).sum()), "copies_per_clip": a.n_augmentations,
        "failed": len(result.failed_clips),
        "failed_clips": result.failed_clips[["clip_id", "path", "reason"]].to_dict("records"),
        "failed_copies": copies[["clip_id", "aug", "reason"]].to_dict("records"),
        "extraction": {k: result.stats[k] for k in ("cached", "computed", "padded_fraction")},
    })
    log.info("wrote %d rows of shape %s; %d clips failed", len(X), X.shape[1:], len(result.failed_clips))


if __name__ == "__main__":
    run_stage(main)
