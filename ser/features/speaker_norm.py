"""``features.normalize``: each speaker's (``speaker``) or each corpus's (``corpus``) vectors standardised with
that group's own statistics.

Per feature, a group's rows have the mean and standard deviation of its original clips subtracted and
divided out (augmented copies use their group's figures too). Per speaker it removes much of what tells
voices apart; per corpus, what tells recording set-ups apart (level, microphone, room, language): a model
trained on one corpus then labels another far better (docs/other-recordings.md). Both are **transductive**: the
test group's statistics come from its own (unlabelled) clips, so predict needs several recordings of a new
speaker (``--speaker``) or a batch of recordings from one set-up (``--adapt``), and every number measured with
it is labelled so (:data:`TRANSDUCTIVE`).
"""

from __future__ import annotations

import numpy as np

TRANSDUCTIVE = {"speaker": ", transductive: features standardised per speaker with each test speaker's own clips",
                "corpus": ", transductive: features standardised per corpus with the test corpus's own clips"}
MIN_CLIPS = {"speaker": 2, "corpus": 30}  # a corpus's statistics: from a batch of at least this many recordings


def standardise(X: np.ndarray, reference: np.ndarray, by: str = "speaker") -> np.ndarray:
    """``X`` standardised with the mean and std of ``reference`` (rows of one speaker or corpus: ``by``)."""
    if len(reference) < MIN_CLIPS[by]:
        raise ValueError(f"{by} normalisation needs at least {MIN_CLIPS[by]} clips of a {by}, got {len(reference)}")
    reference = np.asarray(reference, np.float64)
    scale = reference.std(0)
    scale[scale < 1e-8] = 1.0
    return ((np.asarray(X, np.float64) - reference.mean(0)) / scale).astype(np.float32)


def by_group(X: np.ndarray, groups: np.ndarray, original: np.ndarray, by: str = "speaker") -> np.ndarray:
    """Every row standardised with its group's original rows (``original``: aug == 0); ``by`` names the
    groups (speaker or corpus)."""
    out = np.empty(X.shape, np.float32)
    groups, original = np.asarray(groups), np.asarray(original, bool)
    for group in np.unique(groups):
        rows = groups == group
        try:
            out[rows] = standardise(X[rows], X[rows & original], by)
        except ValueError as err:
            raise ValueError(f"features.normalize: {by}: {by} {group}: {err}; set features.normalize: none"
                             ) from None
    return out


def normalisation_groups(meta, manifest, by: str, dataset: str) -> np.ndarray:
    """The group of each row of ``meta`` for ``features.normalize: by``: its speaker, or its corpus (the manifest's
    ``corpus`` column of pooled corpora, else the one dataset)."""
    if by == "speaker":
        return meta["speaker"].to_numpy()
    if "corpus" in manifest:
        return meta["clip_id"].map(manifest.set_index("clip_id")["corpus"]).to_numpy()
    return np.full(len(meta), dataset)
