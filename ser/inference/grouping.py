"""Predictions made from more than one embedding: a window's test-time augmented copies
(:class:`TestTimeAugmentation`), and a speaker's or a batch's windows standardised together (:func:`classify_by_group`,
for models trained with ``features.normalize: speaker``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ser.inference.files import Loaded

Classify = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # X -> (probabilities, novelty)


class TestTimeAugmentation:
    """Each window embedded as itself and ``copies`` augmented copies (the training run's augment chain, copy
    j of window k of a file seeded by (seed, path, k, j)); its probabilities and novelty are the means."""

    def __init__(self, copies: int, augment_params, seed: int, sample_rate: int):
        from ser.features.augment import Augmenter

        self.copies = copies
        self.augmenter = Augmenter(augment_params, seed, sample_rate) if copies else None

    def waves(self, key: tuple, wave: np.ndarray) -> Iterator[tuple[tuple, np.ndarray]]:
        yield key, wave
        item, k = key
        for j in range(1, self.copies + 1):
            yield (item, k, j), self.augmenter(wave, f"{item.path}#{k}", j)

    def collect(self, key: tuple, result: tuple | str) -> None:
        """Record one embedding's result; the window's is set once all of its copies are in."""
        item, k = key[0], key[1]
        if not self.copies:
            item.proba[k] = result
            return
        parts = item.parts.setdefault(k, [])
        parts.append(result)
        if len(parts) == self.copies + 1:
            failed = [p for p in parts if isinstance(p, str)]
            item.proba[k] = failed[0] if failed else (np.mean([p for p, _ in parts], axis=0),
                                                      float(np.mean([n for _, n in parts])))


def classify_by_group(classify: Classify, windows: list[tuple[tuple, np.ndarray]],
                      speakers: str | dict[str, str], by: str = "speaker") -> None:
    """Classify each group's windows standardised with that group's statistics (all their windows): a speaker's
    (``by='speaker'``) or one recording set-up's (``'corpus'``); ``speakers`` is one name for every file or
    {resolved path: name}."""
    from ser.features.speaker_norm import standardise

    groups: dict[str, list[tuple[Loaded, int, np.ndarray]]] = {}
    for (item, k), vector in windows:
        name = speakers if isinstance(speakers, str) else speakers.get(str(Path(item.path).resolve()))
        if name is None:
            item.proba[k] = "no speaker given for this file (--speakers)"
            continue
        groups.setdefault(name, []).append((item, k, vector))
    for name, group in groups.items():
        X = np.stack([v for _, _, v in group])
        try:
            proba, novelty = classify(standardise(X, X, by))
        except ValueError as err:  # too few clips of this speaker (or batch) for statistics
            for item, k, _ in group:
                item.proba[k] = f"{by} {name}: {err}"
            continue
        for (item, k, _), p, n in zip(group, proba, novelty):
            item.proba[k] = (p, float(n))
