"""params.yaml ``cross_corpus``: the extra test corpora of the final model (:mod:`ser.evaluation.cross_corpus`)."""

from __future__ import annotations

from pydantic import Field

from ser.section import Section


class CrossCorpus(Section):
    """One ``cross_corpus`` entry: a corpus the project reads, tested with the final model."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$", description="its key in metrics.json")
    dataset: str
    dir: str | None = None
    csv: str | None = None
