"""Which encoder layers a classifier reads, chosen inside each training fold (params.yaml ``select``).

The best layer of a speech encoder for emotion is a property of the corpus, not of the encoder
(Whisper-base + SVM: layer 3 on RAVDESS, EMOVO and nEMO, layer 1 on URDU), so with
``features.layers: all`` the extract stage keeps every layer's pooled vector side by side (one block
each, ``features.json`` ``blocks``) and train picks among them on the training rows alone.

:class:`LayerChoice` wraps the configured classifier: an inner CV over ``select.inner_folds`` folds that
hold out whole speakers (whole clips without speakers; :func:`ser.models.inner_splits.split_units`) scores a clone
of the classifier on each candidate layer by the UAR of its held-out clips (fit and scored on original clips
only, so the ranking costs the same whatever ``augment.n_augmentations``); the ``select.top`` best layers'
classifiers are refit on all training rows, augmented copies included, and their probabilities averaged. The outer test
fold is never seen; the final model chooses the same way on all clips. ``select.layers: [3]`` fixes the
layer (no inner CV), ``concat`` feeds all blocks joined as one vector.

Why the best 4 averaged, not the single best: on the four shared corpora the single best layer by inner CV
lost to the best fixed layer by 0.01-0.14 UAR (a noisy choice on small corpora), while the average of the
best 4 of 7 came within 0.01 of it or beat it on every corpus (``python -m reproduce --table corpora``, docs/results).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import ParameterGrid

from ser.artifacts import read_json, write_json
from ser.models.select_params import SelectParams

log = logging.getLogger(__name__)

FILE = "layers.json"


def candidates(blocks: dict | None, select: SelectParams) -> list[int] | None:
    """The hidden-state indices train chooses among, from features.json's ``blocks`` (None: nothing to
    choose, the classifier reads the vector whole). ValueError names ``select.layers`` when it lists a
    layer the features do not hold."""
    if not blocks or select.layers == "concat":
        return None
    held = list(blocks["layers"])
    if select.layers == "auto":
        return held
    wanted = [i % blocks["states"] if -blocks["states"] <= i < blocks["states"] else i for i in select.layers]
    missing = [i for i, w in zip(select.layers, wanted) if w not in held]
    if missing:
        raise ValueError(f"select.layers: {missing} not among the extracted layers {held} (features.layers); "
                         f"use indices from 0 to {blocks['states'] - 1}, or -1 for the last")
    return list(dict.fromkeys(wanted))


def planned(blocks: dict | None, select: SelectParams) -> list[int] | None:
    """:func:`candidates`, checked against what else ``select`` asks (ConfigError naming the key) and logged."""
    from ser.errors import ConfigError

    try:
        layers = candidates(blocks, select)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if layers:
        log.info("choosing among encoder layers %s inside every training fold: the best %d by inner CV "
                 "(select.top), their probabilities averaged", layers, min(select.top, len(layers)))
    elif select.grid:
        raise ConfigError("select.grid is tried with the encoder layers train chooses among, and these features are "
                          "one vector per clip (embeddings/features.json has no layer blocks): search the settings "
                          "with tune.enabled: true instead")
    elif isinstance(select.layers, list):
        log.warning("select.layers %s: these features are one vector per clip, read whole", select.layers)
    return layers


def tuned_on(X, blocks: dict | None, select: SelectParams) -> np.ndarray:
    """What tuning searches on: X, or the one layer's block when ``select.layers`` fixes a single layer of
    several (the train stage and ``python -m ser.models.tuning`` workers alike, so their trials share studies)."""
    layers = candidates(blocks, select)
    if not layers or len(layers) > 1:
        return X
    return LayerChoice(None, blocks["layers"]).view_of(X, layers)


class LayerChoice(ClassifierMixin, BaseEstimator):
    """``estimator`` on the encoder layers that score best inside the training rows.

    X holds one block of equal width per hidden state in ``layers`` (in that order). ``fit(X, y, groups=None,
    clip_ids=None, aug=None)`` scores a clone of ``estimator`` on each of ``candidates`` (default: every
    layer) by inner CV, refits the ``top`` best on all rows and averages their probabilities. After fitting:
    ``members_`` [(layer, fitted estimator)], best first; ``inner_uar_`` {layer: inner UAR} (empty when every
    candidate is used); ``classes_``; ``fit_facts_`` (the choice, for results/cv.json).
    """

    def __init__(self, estimator: BaseEstimator, layers: list[int], candidates: list[int] | None = None,
                 top: int = 4, inner_folds: int = 3, grid: dict | None = None, random_state: int = 0):
        self.estimator = estimator
        self.layers = layers
        self.candidates = candidates
        self.top = top
        self.inner_folds = inner_folds
        self.grid = grid
        self.random_state = random_state

    def fit(self, X, y, groups=None, clip_ids=None, aug=None) -> LayerChoice:
        from ser.models.classifiers import fit_rows, proba_over
        from ser.models.cv import fit_facts
        from ser.models.inner_splits import grouped_folds, split_units

        X = np.asarray(X)
        self.width_ = self._width(X)
        self.classes_, codes = np.unique(y, return_inverse=True)
        facts = {"groups": groups, "clip_ids": clip_ids, "aug": aug}
        pool = list(self.candidates if self.candidates is not None else self.layers)
        settings = list(ParameterGrid(self.grid or {}))
        self.inner_uar_, self.settings_ = {}, dict.fromkeys(pool, settings[0])
        if len(pool) > self.top or len(settings) > 1:
            # the ranking is fit and scored on original clips only: its cost does not grow with augmented copies
            rows = np.flatnonzero(np.asarray(aug) == 0) if aug is not None else np.arange(len(codes))
            inner_facts = {k: None if v is None else np.asarray(v)[rows] for k, v in facts.items()}
            units, kind = split_units(len(rows), inner_facts["groups"], inner_facts["clip_ids"])
            folds = grouped_folds(codes[rows], units, self.inner_folds, self.random_state)
            held = np.concatenate([h for _, h in folds])
            for layer in pool:
                block = self._block(X, layer)[rows]
                for setting in settings:  # the layer's score is that of its best setting (the first on a tie)
                    model = self._configured(setting)
                    inner = np.concatenate([proba_over(fit_rows(model, block, codes[rows], train, inner_facts),
                                                       block[h], np.arange(len(self.classes_))) for train, h in folds])
                    uar = float(balanced_accuracy_score(codes[rows][held], inner.argmax(1)))
                    if uar > self.inner_uar_.get(layer, -1.0):
                        self.inner_uar_[layer], self.settings_[layer] = uar, setting
            pool = sorted(pool, key=lambda layer: -self.inner_uar_[layer])  # stable: ties keep the listed order
            grid = f" each with its best of {len(settings)} settings of select.grid," if len(settings) > 1 else ""
            how = (f"the best {min(self.top, len(pool))} of {len(pool)} layers by the UAR of inner CV ({len(folds)} "
                   f"folds by {kind}, {len(held)} original clips),{grid} their probabilities averaged")
        else:
            how = (f"all {len(pool)} candidate layer(s) (select.top={self.top}), no inner CV needed"
                   + (", their probabilities averaged" if len(pool) > 1 else ""))
        everything = np.arange(len(codes))
        self.members_ = [(layer, fit_rows(self._configured(self.settings_[layer]), self._block(X, layer), codes,
                                          everything, facts)) for layer in pool[:self.top]]
        self.n_features_in_ = X.shape[1]
        self.fit_facts_ = {**fit_facts(self.members_[0][1]), "layers_chosen": self.chosen, "layer_choice": how,
                           "layer_inner_uar": {str(k): round(v, 4) for k, v in self.inner_uar_.items()}}
        if len(settings) > 1:
            self.fit_facts_["layer_settings"] = {str(layer): self.settings_[layer] for layer in self.chosen}
        log.info("layers %s chosen (%s)", self.chosen, how)
        return self

    def _configured(self, setting: dict) -> BaseEstimator:
        """``estimator`` with a setting of ``grid`` (keys of the classifier's params group) applied to its last step."""
        steps = getattr(self.estimator, "steps", None)
        prefix = f"{steps[-1][0]}__" if steps else ""
        return clone(self.estimator).set_params(**{prefix + k: v for k, v in setting.items()})

    def predict_proba(self, X) -> np.ndarray:
        from ser.models.classifiers import proba_over

        X = np.asarray(X)
        codes = np.arange(len(self.classes_))
        return np.mean([proba_over(member, self._block(X, layer), codes) for layer, member in self.members_], 0)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]

    def view(self, X) -> np.ndarray:
        """The columns of X this model reads: its members' blocks, best first (what :meth:`narrowed` takes)."""
        return self.view_of(X, self.chosen)

    def view_of(self, X, layers: list[int]) -> np.ndarray:
        """The blocks of ``layers`` in X (laid out as ``self.layers``), side by side in that order."""
        X = np.asarray(X)
        return np.concatenate([self._block(X, layer) for layer in layers], 1)

    def narrowed(self) -> LayerChoice:
        """This fitted model over its members' layers only (vectors extracted with ``features.layers``
        = :attr:`chosen`), as predict computes them: the other layers need not be extracted at all."""
        model = LayerChoice(self.estimator, self.chosen, self.chosen, self.top, self.inner_folds, self.grid,
                            self.random_state)
        model.members_, model.classes_, model.width_ = self.members_, self.classes_, self.width_
        model.inner_uar_, model.settings_, model.fit_facts_ = self.inner_uar_, self.settings_, self.fit_facts_
        model.n_features_in_ = self.width_ * len(self.members_)
        return model

    def card(self, candidates: list[int]):
        """The model card's ``layer_choice``."""
        from ser.models.model_card import LayerChoiceCard

        said = self.fit_facts_
        return LayerChoiceCard(candidates=candidates, chosen=self.chosen, how=said["layer_choice"],
                               inner_uar=said["layer_inner_uar"], settings=said.get("layer_settings", {}))

    @property
    def chosen(self) -> list[int]:
        """The hidden-state indices of the members, best first."""
        return [layer for layer, _ in self.members_]

    def _width(self, X: np.ndarray) -> int:
        if X.ndim != 2 or X.shape[1] % len(self.layers):
            raise ValueError(f"LayerChoice: {X.shape[1:]} features do not split into {len(self.layers)} layer blocks")
        return X.shape[1] // len(self.layers)

    def _block(self, X: np.ndarray, layer: int) -> np.ndarray:
        width = getattr(self, "width_", None) or self._width(X)
        start = self.layers.index(layer) * width
        return X[:, start:start + width]


def save(model, folder: Path, classifier: str) -> Path:
    """The ``classifier``'s files; for a :class:`LayerChoice` each member's in ``layer_<i>/`` and ``layers.json``."""
    from ser.models import classifiers

    module, folder = classifiers.get(classifier), Path(folder)
    if not isinstance(model, LayerChoice):
        return module.save(model, folder)
    for layer, member in model.members_:
        (folder / f"layer_{layer}").mkdir(parents=True, exist_ok=True)
        module.save(member, folder / f"layer_{layer}")
    return write_json(folder / FILE, {"layers": model.layers, "members": model.chosen, "top": model.top,
                                      "classes": model.classes_.tolist(), "width": model.width_,
                                      "inner_uar": {str(k): v for k, v in model.inner_uar_.items()},
                                      "fit_facts": model.fit_facts_})


def load(folder: Path, classifier: str):
    """What :func:`save` wrote in ``folder``."""
    from ser.models import classifiers

    module, folder = classifiers.get(classifier), Path(folder)
    if not (folder / FILE).is_file():
        return module.load(folder)
    config = read_json(folder / FILE)
    model = LayerChoice(None, config["layers"], config["members"], config["top"])
    model.members_ = [(layer, module.load(folder / f"layer_{layer}")) for layer in config["members"]]
    model.classes_, model.width_ = np.asarray(config["classes"]), config["width"]
    model.inner_uar_ = {int(k): v for k, v in config["inner_uar"].items()}
    model.fit_facts_ = config["fit_facts"]
    model.n_features_in_ = model.width_ * len(model.layers)
    return model
