"""What predict writes: flat rows (CSV and the printed table) or nested JSON records per file."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from ser.inference.files import FileResult
from ser.trust.uncertainty import entropy, margin

UNKNOWN = "unknown"  # the label of input the novelty score rejects (its probabilities are still given)
VERDICT = ("predicted", "closest", "confidence", "margin", "entropy", "novelty", "speech")


def verdict(proba: np.ndarray | None, novelty: float | None, unknown: bool, labels: list[str],
            speech: float | None = None) -> dict:
    """predicted (``unknown`` when rejected), the closest class, and the uncertainty of one prediction: top
    probability, margin to the runner-up, normalised entropy (0 certain .. 1 uniform), novelty score and speech
    presence (the highest Silero speech probability; empty when the model has no speech gate)."""
    if proba is None:
        return dict.fromkeys(VERDICT, "")
    closest = labels[int(np.argmax(proba))]
    return {"predicted": UNKNOWN if unknown else closest, "closest": closest,
            "confidence": round(float(proba.max()), 4), "margin": round(float(margin(proba)), 4),
            "entropy": round(float(entropy(proba)), 4), "novelty": round(float(novelty), 4),
            "speech": "" if speech is None else round(float(speech), 4)}


def rejection_rule(speech_threshold: float | None, method: str, threshold: float) -> str:
    """When predict calls a window ``unknown``, in words (``threshold``: inf where the novelty score only reports)."""
    rules = ([f"speech presence below {speech_threshold:g}"] if speech_threshold is not None else []) + (
        [f"{method} novelty above {threshold:.4g}"] if np.isfinite(threshold) else [])
    return " or ".join(rules) or "never (no speech gate; the novelty score is reported only)"


def rows(result: FileResult, labels: list[str]) -> list[dict]:
    """Flat rows: the utterance (segment 'all'), then each segment when the file was cut."""
    def row(segment: str, start: float, end: float, proba: np.ndarray | None, novelty: float | None,
            unknown: bool, speech: float | None) -> dict:
        out = {"path": result.path, "segment": segment, "start": start, "end": end,
               **verdict(proba, novelty, unknown, labels, speech)}
        out.update({f"p_{lab}": (round(float(proba[i]), 4) if proba is not None else "")
                    for i, lab in enumerate(labels)})
        out["error"] = result.error
        return out

    out = [row("all", 0.0, result.duration, result.proba, result.novelty, result.unknown, result.speech)]
    if result.segmented:
        out += [row(str(i + 1), s.start, s.end, s.proba, s.novelty, s.unknown, s.speech)
                for i, s in enumerate(result.segments)]
    return out


def as_json(result: FileResult, labels: list[str]) -> dict:
    """Nested JSON record of one file: summary plus a list of segments."""
    def probs(p: np.ndarray) -> dict:
        return {lab: round(float(p[i]), 4) for i, lab in enumerate(labels)}

    out: dict[str, Any] = {"path": result.path, "duration": result.duration}
    if result.error:
        return {**out, "error": result.error}
    out.update(**verdict(result.proba, result.novelty, result.unknown, labels, result.speech),
               probabilities=probs(result.proba))
    out["segments"] = [{"start": s.start, "end": s.end, **verdict(s.proba, s.novelty, s.unknown, labels, s.speech),
                        "probabilities": probs(s.proba)} for s in result.segments]
    return out


def fields(labels: list[str]) -> list[str]:
    """The CSV columns: one row per file and per segment."""
    return ["path", "segment", "start", "end", *VERDICT, *[f"p_{lab}" for lab in labels], "error"]


def write_output(path: str | Path, results: list[FileResult], labels: list[str], info: dict | None = None) -> Path:
    """``.json``: {model, files: [...]}; anything else: CSV with one row per file and per segment."""
    from ser.artifacts import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".json":
            payload = {"model": info or {}, "labels": labels, "files": [as_json(r, labels) for r in results]}
            tmp.write_text(json.dumps(payload, indent=2) + "\n")
        else:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields(labels))
                writer.writeheader()
                writer.writerows(row for r in results for row in rows(r, labels))
    return path


class PartialRows:
    """Each finished file's CSV rows appended and flushed to ``<output>.partial.csv`` as predict goes, so an
    interrupted batch keeps what finished; :meth:`done` removes it once the output itself is written."""

    def __init__(self, output: str | Path, labels: list[str]):
        self.path = Path(f"{output}.partial.csv")
        self.labels, self.files = labels, 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", newline="")  # noqa: SIM115 - open for the whole batch
        self._writer = csv.DictWriter(self._file, fieldnames=fields(labels))
        self._writer.writeheader()

    def add(self, result: FileResult) -> None:
        self._writer.writerows(rows(result, self.labels))
        self._file.flush()
        self.files += 1

    def close(self) -> None:
        self._file.close()

    def done(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def format_row(row: dict, labels: list[str], width: int = 40) -> str:
    """One printable line of the table (see :func:`table_header`)."""
    path = row["path"] if row["segment"] == "all" else f"  segment {row['segment']}"
    path = path if len(path) <= width else "…" + path[-(width - 1):]
    span = f"{row['start']:7.2f} {row['end']:7.2f}"
    if row["error"]:
        return f"{path:<{width}} {span}  ERROR: {row['error']}"
    probs = " ".join(f"{row[f'p_{lab}']:>{max(5, len(lab))}.2f}" for lab in labels)
    return (f"{path:<{width}} {span}  {row['predicted']:<12} {row['confidence']:>5.2f} {row['margin']:>6.2f} "
            f"{row['novelty']:>8.3g}  {probs}")


def table_header(labels: list[str], width: int = 40) -> str:
    probs = " ".join(f"{lab:>{max(5, len(lab))}}" for lab in labels)
    return (f"{'path':<{width}} {'start':>7} {'end':>7}  {'emotion':<12} {'conf':>5} {'margin':>6} {'novelty':>8}  "
            f"{probs}")
