"""One corpus named in params.yaml besides ``dataset``: a pooled training corpus (``multi.corpora``) or a
cross-corpus test corpus (``cross_corpus``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ser.section import Section


class CorpusSpec(Section):
    """A corpus the project reads: its name (a key in metrics.json, a prefix of its clip and speaker ids),
    its ``dataset`` reader, and its folder (``dir``) or CSV (``csv``, dataset folder)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$", description="its key in metrics.json")
    dataset: str
    dir: str | None = None
    csv: str | None = None

    def params(self, params):
        """``params`` reading this corpus instead (every label kept: the run's own label settings apply later)."""
        data = params.data.model_copy(update={"dir": self.dir, "csv": self.csv, "labels": None, "label_map": None})
        return params.model_copy(update={"dataset": self.dataset, "data": data})

    def root(self, params) -> Path:
        return self.params(params).data.root(self.dataset)
