"""params.yaml ``cross_corpus``: the extra test corpora of the final model (:mod:`ser.evaluation.cross_corpus`)."""

from __future__ import annotations

from pydantic import Field

from ser.corpora.spec import CorpusSpec


class CrossCorpus(CorpusSpec):
    """One ``cross_corpus`` entry: a corpus the project reads, tested with the final model."""

    labels: list[str] | None = Field(None, description="score these classes only (each one the model knows), e.g. "
                                     "the four most corpora share, so that corpora compare; null: every shared class")
