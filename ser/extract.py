"""Embed every clip of the manifest with the configured extractor."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from tqdm import tqdm

from .audio import load
from .features import Extractor

log = logging.getLogger(__name__)


def embed_manifest(manifest: pd.DataFrame, extractor: Extractor, workers: int = 2
                   ) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Return (X, meta, failed): meta has clip_id, label, speaker, aug for each row of X;
    a clip that fails to load or embed is reported in ``failed`` and left out."""
    def one(path: str) -> np.ndarray | str:
        try:
            return extractor.transform([load(path, extractor.sample_rate)])[0]
        except Exception as err:  # noqa: BLE001 - one broken clip must not stop thousands
            return f"{type(err).__name__}: {err}"

    with ThreadPoolExecutor(workers) as pool:
        out = list(tqdm(pool.map(one, manifest["path"]), total=len(manifest), desc="embedding",
                        unit="clip", mininterval=1.0))
    ok = np.array([not isinstance(v, str) for v in out], dtype=bool)
    failed = manifest.loc[~ok, ["clip_id", "path"]].assign(reason=[v for v in out if isinstance(v, str)])
    for row in failed.itertuples():
        log.warning("left out %s: %s", row.path, row.reason)
    X = np.stack([v for v in out if not isinstance(v, str)]).astype(np.float32)
    meta = manifest.loc[ok, ["clip_id", "label", "speaker"]].reset_index(drop=True).assign(aug=0)
    return X, meta, failed.reset_index(drop=True)
