"""What training will need, checked on the manifest before any audio is embedded.

prepare runs :func:`check` on the manifest, and train runs it again on the clips that were
embedded, so a corpus that cannot be cross-validated as configured fails in seconds with the
setting that fixes it, never as a traceback after hours of extraction. What is not an error but
changes how a run is measured (leave-one-speaker-out, inner splits by clip) is returned as notes,
which prepare logs and writes to data/prepare.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ser.config import CvParams
from ser.corpora.emotions import NO_SPEAKER
from ser.errors import DatasetError
from ser.models.cv import Plan, outer_folds, plan

DROP_OR_MERGE = "drop the class (data.labels lists the classes to keep) or merge it (data.label_map)"


@dataclass
class Feasibility:
    """The CV protocol train will use and what a reader should know about it."""

    plan: Plan
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {"protocol": self.plan.protocol, "folds": self.plan.folds, "notes": self.notes}


def check(clips: pd.DataFrame, cv: CvParams, seed: int) -> Feasibility:
    """Raise DatasetError when ``clips`` (one row per original clip: clip_id, label, speaker) cannot
    be cross-validated as ``cv`` asks; else return the plan, with LOSO and inner-split notes."""
    labels = clips["label"].astype(str)
    classes = sorted(labels.unique())
    if len(classes) < 2:
        raise DatasetError(f"the manifest holds one class ({classes[0]!r}, {len(clips)} clips) and a classifier "
                           "needs two or more: check data.labels and data.label_map, or the corpus' labels")
    speakers = clips["speaker"].astype(str)
    if cv.group_by == "speaker":
        _require_speakers(speakers)
    if cv.group_by == "corpus" and "corpus" not in clips:
        raise DatasetError("cv.group_by: corpus holds out one corpus per fold, and these clips name no corpus: use "
                           "dataset: multi (several corpora pooled) or cv.group_by: speaker")
    groups = clips["corpus"].astype(str) if cv.group_by == "corpus" else speakers
    try:
        cv_plan = plan(groups.to_numpy(), cv.folds, cv.group_by, cv.max_folds, cv.tta)
    except ValueError as err:
        raise DatasetError(str(err)) from None
    result = Feasibility(cv_plan)
    if cv_plan.leave_one_speaker_out:
        result.notes.append(f"{cv_plan.folds} speakers, fewer than cv.folds={cv.folds}: "
                            "leave-one-speaker-out folds instead")
    if cv_plan.group_by == "speaker":
        result.notes += _confound(labels, speakers)
    meta = pd.DataFrame({"clip_id": clips["clip_id"].astype(str).to_numpy(), "label": labels.to_numpy(),
                         "speaker": speakers.to_numpy(), "corpus": groups.to_numpy(), "aug": 0})
    try:
        folds = outer_folds(meta, cv_plan, seed)
    except ValueError as err:  # e.g. fewer clips than folds
        raise DatasetError(f"cv.folds={cv_plan.folds} cannot split {len(meta)} clips: {err}; lower cv.folds") from None
    single = []
    for k, (train, _) in enumerate(folds):
        absent = sorted(set(classes) - set(labels.iloc[train]))
        if absent:
            raise DatasetError(_absent_message(absent[0], k, cv_plan, labels, groups))
        if cv_plan.group_by != "none" and speakers.iloc[train].nunique() < 2:
            single.append(k + 1)
    if single:
        result.notes.append(f"fold(s) {', '.join(map(str, single))} train on one speaker: inner splits there "
                            "(SVM calibration, layer choice, tuning) hold out whole clips instead of speakers, and "
                            "early stopping is off")
    return result


def _confound(labels: pd.Series, speakers: pd.Series) -> list[str]:
    """A note when most speakers recorded a single class (URDU: 26 of 29): voice and class go together.
    The folds stay honest (every test voice is unseen), but each class rests on few voices."""
    classes_of = labels.groupby(speakers.to_numpy()).nunique()
    single = int((classes_of == 1).sum())
    if single * 2 <= len(classes_of):
        return []
    voices = labels.groupby(labels.to_numpy()).apply(lambda c: speakers[c.index].nunique())
    return [f"{single} of {len(classes_of)} speakers recorded one class only, so voice and class go together: the "
            "speaker-independent folds keep every test voice unseen (honest), but each class rests on few voices "
            f"({', '.join(f'{k} {v}' for k, v in voices.items())} speakers) and a fold's test side may lack a class"]


def _require_speakers(speakers: pd.Series) -> None:
    missing = int((speakers == NO_SPEAKER).sum())
    if missing:
        raise DatasetError(f"{missing} of {len(speakers)} clips have no speaker id (speaker={NO_SPEAKER!r}), so "
                           "speaker-independent folds are impossible: give each clip its speaker (a CSV with "
                           "columns path,label,speaker, as data.csv or a data.csv file at the top of data.dir; "
                           "label sub-folders carry no speakers), or set cv.group_by: none (folds by clip; the same "
                           "voice may sit on both sides, so the numbers are not speaker-independent)")


def _absent_message(label: str, k: int, cv_plan: Plan, labels: pd.Series, groups: pd.Series) -> str:
    where = f"fold {k + 1}/{cv_plan.folds} would test class {label!r} with no {label!r} clip in training"
    if cv_plan.group_by != "none":
        who = np.unique(groups[labels == label])
        names = ", ".join(map(str, who[:5])) + (", ..." if len(who) > 5 else "")
        if cv_plan.group_by == "corpus":
            return (f"{where}: only {names} has it, and leave-one-corpus-out tests that corpus with no other "
                    "corpus's clips of it in training. Fix: keep the classes every corpus has (data.labels), or merge "
                    "it into one of them (data.label_map)")
        return (f"{where}: {len(who)} speaker(s) recorded it ({names}) and all sit in that fold's test side. "
                f"Fix: {DROP_OR_MERGE}, or set cv.group_by: none (not speaker-independent)")
    n = int((labels == label).sum())
    fewer = f"lower cv.folds to {n} or less, or " if n >= 2 else ""
    return f"{where}: it has {n} clip(s), too few for {cv_plan.folds} folds. Fix: {fewer}{DROP_OR_MERGE}"
