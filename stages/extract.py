"""extract: data/manifest.csv -> embeddings/features.npz (X, clip_id, label, speaker, aug) + features.json.

Vectors live in embeddings/cache/ (outside DVC's outputs, so DVC never deletes it before a re-run):
a re-run computes only what a changed setting or a new clip needs.
"""

import logging

from ser import features
from ser.artifacts import read_table, write_json, write_npz
from ser.config import load_params
from ser.features.extract import extract, feature_params
from ser.stage import run_stage

log = logging.getLogger("stages.extract")
CACHE = "embeddings/cache"


def main() -> None:
    params = load_params()
    manifest = read_table("data/manifest.csv")
    extractor = features.build(params)  # loads the model: a missing one fails here, before any work
    f, a = params.features, params.augment
    log.info("extracting %s features of %d clips + %d augmented copies each", f.extractor, len(manifest),
             a.n_augmentations)
    result = extract(manifest, extractor, CACHE, a, params.seed, f.batch_seconds, params.data.workers,
                     f.max_failed_fraction)
    X, meta = result.X, result.meta
    write_npz("embeddings/features.npz", X=X, **{c: meta[c].to_numpy(str) for c in ("clip_id", "label", "speaker")},
              aug=meta["aug"].to_numpy())
    copies = result.failed[result.failed["aug"] > 0]
    write_json("embeddings/features.json", {
        "identity": extractor.identity(),
        "feature_params": feature_params(params),  # copied into the model card by train
        "augment": {**a.model_dump(), "seed": params.seed} if a.n_augmentations else None,
        "rows": len(X), "dim": X.shape[1],
        "clips": int((meta["aug"] == 0).sum()), "copies_per_clip": a.n_augmentations,
        "failed": len(result.failed_clips),
        "failed_clips": result.failed_clips[["clip_id", "path", "reason"]].to_dict("records"),
        "failed_copies": copies[["clip_id", "aug", "reason"]].to_dict("records"),
        "extraction": {k: result.stats[k] for k in ("cached", "computed", "padded_fraction")},
    })
    log.info("wrote %d x %d embeddings; %d clips failed", len(X), X.shape[1],
             len(result.failed_clips))


if __name__ == "__main__":
    run_stage(main)
