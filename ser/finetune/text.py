"""Transcripts for the CTC head: normalised to lower-case letters, apostrophes and single spaces, and a
character vocabulary built from the training transcripts (index 0 is the CTC blank)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

BLANK = "<blank>"


def normalise(text: object) -> str:
    """Lower-case letters (any script), apostrophes and single spaces; '' for a missing transcript."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return ""
    text = unicodedata.normalize("NFC", str(text)).lower().replace("’", "'")
    text = "".join(c if c.isalpha() or c == "'" else " " for c in text)
    return re.sub(r"\s+", " ", text).strip()


class Vocabulary:
    """Characters of the transcripts (blank first): encode text to ids, decode greedy CTC paths."""

    def __init__(self, symbols: Sequence[str]):
        if not symbols or symbols[0] != BLANK:
            raise ValueError("a CTC vocabulary starts with the blank symbol")
        self.symbols = list(symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def of(cls, texts: Iterable[str]) -> Vocabulary:
        """The characters of these (normalised) transcripts."""
        return cls([BLANK, *sorted({c for t in texts for c in t})])

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, text: str) -> list[int]:
        """Ids of a normalised transcript; characters outside the vocabulary are dropped."""
        return [self.index[c] for c in text if c in self.index]

    @staticmethod
    def frames_needed(ids: Sequence[int]) -> int:
        """The fewest output frames a CTC alignment of ``ids`` takes: one per symbol, plus a blank between repeats."""
        return len(ids) + sum(a == b for a, b in zip(ids, ids[1:]))

    def decode(self, path: Sequence[int]) -> str:
        """Greedy CTC decoding of a best path: repeats merged, blanks removed."""
        out, previous = [], 0
        for i in path:
            if i != previous and i != 0:
                out.append(self.symbols[i])
            previous = i
        return "".join(out)
