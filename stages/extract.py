"""extract: data/manifest.csv -> embeddings/features.npz (X, clip_id, label, speaker, aug)."""

import logging

import pandas as pd

from ser import features
from ser.cli import run_stage
from ser.config import load_params
from ser.extract import embed_manifest
from ser.io import write_json, write_npz

log = logging.getLogger("stages.extract")


def main() -> None:
    params = load_params()
    manifest = pd.read_csv("data/manifest.csv", dtype={"speaker": str, "clip_id": str})
    extractor = features.build(params)
    log.info("extracting %s features of %d clips", params.features.extractor, len(manifest))
    X, meta, failed = embed_manifest(manifest, extractor, params.data.workers)
    write_npz("embeddings/features.npz", X=X, **{c: meta[c].to_numpy(str) for c in ("clip_id", "label", "speaker")},
              aug=meta["aug"].to_numpy())
    write_json("embeddings/features.json", {"settings": extractor.settings(), "rows": len(X), "dim": X.shape[1],
                                            "failed": len(failed), "failed_clips": failed.to_dict("records")})
    log.info("wrote %d x %d embeddings; %d clips failed", *X.shape, len(failed))


if __name__ == "__main__":
    run_stage(main)
