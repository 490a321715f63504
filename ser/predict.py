"""Predict emotions of audio files with a trained model folder (``models/``).

``Predictor.load`` rebuilds the training extractor from ``model.json`` and refuses artifacts whose
feature settings or dimension do not match; nothing it loads can execute code (JSON, and each
classifier's own safe format). ``Predictor.predict`` streams files: reader threads make a first
pass over each file ahead (decode, check, place its windows), keeping the samples of a file that
fits in one block (``block_seconds``); a longer one is read again, block by block, as its windows
are cut, so memory is bounded by blocks and batches of audio however long the files. Windows are
grouped by length into batches of at most ``batch_seconds`` of audio for ``extractor.transform``
(as the extract stage does), and one :class:`FileResult` per input comes back in input order, with
an error instead of a guess for missing, undecodable, empty, too short or silent input.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, SerError
from .segment import DEFAULT_WINDOW_SECONDS, Loudness, cut, plan

log = logging.getLogger(__name__)

LEVEL_FRAME_SECONDS = 0.025  # the frame of the silence check (ser.audio.loudest_frame_dbfs)
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
                              ".au", ".snd", ".w64", ".caf", ".rf64"})


class ModelError(SerError):
    """The models folder is missing, incomplete or does not match this code's feature settings."""


@dataclass
class Segment:
    """Calibrated class probabilities of one window of a file (times in seconds)."""

    start: float
    end: float
    proba: np.ndarray


@dataclass
class FileResult:
    """One input: an utterance-level ``proba`` (duration-weighted mean of its segments) or an ``error``."""

    path: str
    duration: float = 0.0
    error: str = ""
    segments: list[Segment] = field(default_factory=list)
    segmented: bool = False  # longer than the window, so cut into segments
    proba: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return not self.error


def collect(paths: Iterable[str | Path]) -> list[tuple[str, str]]:
    """``(path, error)`` per input: folders expand recursively to their audio files (sorted); a file
    named explicitly is tried whatever its extension; a missing path gets an error."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file())
            out.extend((str(f), "") for f in found)
            if not found:
                out.append((str(p), f"no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) in this folder"))
        elif p.exists():
            out.append((str(p), ""))
        else:
            out.append((str(p), "not found"))
    return out


@dataclass
class _Loaded:
    path: str
    error: str = ""
    duration: float = 0.0
    n: int = 0  # samples
    planned: list[tuple[int, int]] = field(default_factory=list)  # windows before their edges settle
    wave: np.ndarray | None = None  # the samples, when the file came in one block
    spans: list[tuple[int, int]] = field(default_factory=list)
    proba: list[np.ndarray | str | None] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(p is not None for p in self.proba)


class _Survey:
    """What a first pass over a recording's blocks tells: its length, whether all samples are finite,
    its loudest 25 ms (``ser.audio.loudest_frame_dbfs`` of the whole), its frame loudness, and the
    samples themselves while there are at most ``keep`` of them."""

    def __init__(self, sample_rate: int, keep: int):
        self.sr, self.keep = sample_rate, keep
        self.n, self.finite, self.loudest = 0, True, -np.inf
        self.loudness = Loudness(sample_rate)
        self.kept: list[np.ndarray] | None = []
        self._frame = max(1, int(sample_rate * LEVEL_FRAME_SECONDS))
        self._rest = np.zeros(0, np.float32)  # the samples after the last whole level frame

    def add(self, block: np.ndarray) -> None:
        from .audio import loudest_frame_dbfs

        self.n += len(block)
        self.finite = self.finite and bool(np.isfinite(block).all())
        self.loudness.add(block)
        rest = np.concatenate([self._rest, block])
        whole = len(rest) // self._frame * self._frame
        if whole:
            self.loudest = max(self.loudest, loudest_frame_dbfs(rest[:whole], self.sr, LEVEL_FRAME_SECONDS))
        self._rest = rest[whole:]
        self.kept = self.kept + [block] if self.kept is not None and self.n <= self.keep else None

    def level(self) -> float:
        """dBFS of the loudest frame (of the whole recording when shorter than a frame)."""
        from .audio import loudest_frame_dbfs

        return self.loudest if self.n >= self._frame else loudest_frame_dbfs(self._rest, self.sr, LEVEL_FRAME_SECONDS)

    def wave(self) -> np.ndarray | None:
        return np.concatenate(self.kept) if self.kept else None


def _decode_error(err: Exception) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text.split("': ", 1)[-1][:160]  # libsndfile repeats the path: "Error opening '<path>': ..."


class Predictor:
    """A trained model folder, loaded once: extractor + classifier + temperature."""

    def __init__(self, extractor: Any, model: Any, labels: list[str], temperature: float = 1.0,
                 window_seconds: float = DEFAULT_WINDOW_SECONDS, target_seconds: float | None = None,
                 min_seconds: float = 0.25, silence_dbfs: float = -60.0, top_db: float = 30.0,
                 batch_seconds: float = 60.0, workers: int = 2, block_seconds: float = 30.0,
                 info: dict | None = None):
        self.extractor, self.model, self.labels = extractor, model, list(labels)
        self.temperature, self.window_seconds = float(temperature), float(window_seconds)
        self.target_seconds = min(target_seconds or window_seconds, window_seconds)
        self.min_seconds, self.silence_dbfs, self.top_db = min_seconds, silence_dbfs, top_db
        self.batch_seconds, self.workers, self.block_seconds = batch_seconds, max(1, workers), block_seconds
        self.info = info or {}
        self.sample_rate = int(extractor.sample_rate)

    @classmethod
    def load(cls, folder: str | Path = "models", segment_seconds: float | None = None, device: str | None = None,
             **options: Any) -> Predictor:
        """Load ``folder`` (model.json, classifier files, calibration.json); raise ModelError if unusable.

        ``device`` overrides the training run's ``features.device`` (neural extractors); settings
        that change the vectors (e.g. fp16 on CUDA) must still match.
        """
        from . import classifiers, features

        folder = Path(folder)
        meta = _read_model_json(folder)
        params = _feature_params(meta, folder, device)
        try:
            extractor = features.build(params)
        except ConfigError as err:  # e.g. trained with features.device: cuda, and this machine has none
            raise ModelError(f"{folder}/model.json: {err} (pick another device with --device)") from None
        _check_settings(extractor.settings(), meta["features"], folder)
        _check_dim(extractor, int(meta["dim"]), folder)
        name = meta["classifier"]
        if name not in classifiers.REGISTRY:
            raise ModelError(f"{folder}/model.json: classifier {name!r} is not one of "
                             f"{', '.join(classifiers.REGISTRY)}")
        _import_skops_without_torch(classifiers.REGISTRY[name])
        _check_skops_types(folder)
        try:
            model = classifiers.get(name).load(folder)
        except Exception as err:  # noqa: BLE001 - any failure to load means the folder is unusable
            raise ModelError(f"{folder}: cannot load the {name} model: {type(err).__name__}: {err}") from None
        expected = getattr(model, "n_features_in_", None)
        if expected is not None and int(expected) != int(meta["dim"]):
            raise ModelError(f"{folder}: the {name} model expects {expected} features, model.json says {meta['dim']}")
        temperature = _temperature(folder, meta["labels"])
        window = segment_seconds or meta.get("max_clip_seconds") or DEFAULT_WINDOW_SECONDS
        options.setdefault("target_seconds", meta.get("median_clip_seconds"))
        options.setdefault("batch_seconds", getattr(params.features, "batch_seconds", 60.0))
        options.setdefault("min_seconds", params.data.min_duration)
        options.setdefault("silence_dbfs", params.data.silence_dbfs)
        log.info("loaded %s: %s on %s features (dim %d), %d labels, temperature %.3f, windows up to %.2f s "
                 "(aim %.2f s)", folder, name, meta["features"].get("extractor", "?"), meta["dim"],
                 len(meta["labels"]), temperature, window, min(options["target_seconds"] or window, window))
        return cls(extractor, model, meta["labels"], temperature, float(window), info=meta, **options)

    # -- per file -------------------------------------------------------------------------------

    def _read(self, item: tuple[str, str]) -> _Loaded:
        """First pass over one file (runs in a reader thread): decode, check, plan its windows."""
        from .loader import blocks

        path, error = item
        if error:
            return _Loaded(path, error)
        sr = self.sample_rate
        survey = _Survey(sr, int(self.block_seconds * sr))
        try:
            if os.path.getsize(path) == 0:
                return _Loaded(path, "empty file")
            for block in blocks(path, sr, self.block_seconds):
                survey.add(block)
        except FileNotFoundError:
            return _Loaded(path, "not found")
        except Exception as err:  # noqa: BLE001 - libsndfile raises several types for bad input
            return _Loaded(path, f"not decodable audio: {_decode_error(err)}")
        duration = survey.n / sr
        if survey.n == 0:
            return _Loaded(path, "no audio frames")
        if duration < self.min_seconds:
            return _Loaded(path, f"too short: {duration:.2f} s (minimum {self.min_seconds:g} s)", duration)
        if not survey.finite:
            return _Loaded(path, "holds NaN or infinite samples", duration)
        level = survey.level()
        if level < self.silence_dbfs:
            return _Loaded(path, f"silent: loudest 25 ms at {level:.1f} dBFS (< {self.silence_dbfs:g})", duration)
        planned = plan(survey.loudness.finish(), survey.n, sr, self.window_seconds, self.top_db, self.target_seconds)
        return _Loaded(path, "", duration, survey.n, planned, survey.wave())

    def _windows(self, item: _Loaded) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
        """``(span, samples)`` of each window of a file: from the kept samples, or a second read."""
        from .loader import blocks

        source = [item.wave] if item.wave is not None else blocks(item.path, self.sample_rate, self.block_seconds)
        item.wave = None
        return cut(source, item.planned, item.n, int(self.min_seconds * self.sample_rate))

    def _classify(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (len(X), K) in ``labels`` order."""
        proba = np.zeros((len(X), len(self.labels)))
        proba[:, np.asarray(self.model.classes_, dtype=int)] = self.model.predict_proba(X)
        if self.temperature != 1.0:
            from .calibration import apply_temperature
            proba = apply_temperature(proba, self.temperature)
        return proba

    def _embed(self, waves: list[np.ndarray]) -> list[np.ndarray | str]:
        """Probabilities or a failure reason per wave; a failing batch is retried wave by wave."""
        try:
            X = np.asarray(self.extractor.transform(waves), dtype=np.float32)
            if X.shape[0] != len(waves):
                raise ValueError(f"extractor returned {X.shape[0]} vectors for {len(waves)} segments")
        except Exception as err:  # noqa: BLE001 - one bad segment must not stop the others
            if len(waves) == 1:
                return [f"feature extraction failed: {type(err).__name__}: {str(err)[:200]}"]
            log.warning("batch of %d segments failed (%s); retrying one by one", len(waves), type(err).__name__)
            X = None
        if X is None:  # retried outside the handler, whose traceback still holds the batch's (GPU) memory
            return [r for w in waves for r in self._embed([w])]
        good = np.isfinite(X).all(axis=1)
        proba = np.zeros((len(X), len(self.labels)))
        if good.any():
            proba[good] = self._classify(X[good])
        return [p if ok else "features hold NaN or infinite values" for p, ok in zip(proba, good)]

    # -- streaming ------------------------------------------------------------------------------

    def predict(self, paths: Iterable[str | Path]) -> Iterator[FileResult]:
        """One FileResult per input file (folders expanded), in input order, as soon as it is complete.

        Reader threads make the first pass ahead (``ser.loader.read_ahead``); windows are cut as
        the batches need them and batched by similar length, at most ``batch_seconds`` of padded
        audio per ``extractor.transform`` call (``ser.loader.length_batches``, as the extract stage
        does).
        """
        from .loader import length_batches, read_ahead

        pending: deque[_Loaded] = deque()

        def segments() -> Iterator[tuple[tuple[_Loaded, int], np.ndarray]]:
            for (path, _), item in read_ahead(collect(paths), self._read, self.workers, 4 * self.workers + 8):
                if isinstance(item, Exception):  # _read reports problems itself; this is a bug guard
                    item = _Loaded(path, f"{type(item).__name__}: {item}")
                item.spans, item.proba = list(item.planned), [None] * len(item.planned)
                pending.append(item)
                try:
                    for k, (span, wave) in enumerate(self._windows(item)):
                        item.spans[k] = span
                        yield (item, k), wave
                except Exception as err:  # noqa: BLE001 - the second read failed: the file changed or vanished
                    item.error = f"not readable a second time: {_decode_error(err)}"
                    item.proba = [item.error if p is None else p for p in item.proba]

        max_samples = max(1, int(self.batch_seconds * self.sample_rate))
        for batch in length_batches(segments(), max_samples):
            for ((item, k), _), proba in zip(batch, self._embed([w for _, w in batch])):
                item.proba[k] = proba
            while pending and pending[0].complete:
                yield self._result(pending.popleft())
        while pending:
            yield self._result(pending.popleft())

    def _result(self, item: _Loaded) -> FileResult:
        sr = self.sample_rate
        result = FileResult(item.path, round(item.duration, 3), item.error,
                            segmented=item.duration > self.window_seconds)
        failed = [p for p in item.proba if isinstance(p, str)]
        if result.error or failed:
            result.error = result.error or failed[0]
            return result
        result.segments = [Segment(round(s / sr, 3), round(e / sr, 3), p) for (s, e), p in zip(item.spans, item.proba)]
        weights = np.array([e - s for s, e in item.spans], dtype=float)
        result.proba = np.average(np.stack(item.proba), axis=0, weights=weights)
        return result


# -- loading checks -------------------------------------------------------------------------------

def _read_model_json(folder: Path) -> dict:
    path = folder / "model.json"
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} not found: train a model first (dvc repro train) or pass --models")
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{path} not found: {folder} holds no trained model (dvc repro train)") from None
    except json.JSONDecodeError as err:
        raise ModelError(f"{path} is not valid JSON: {err}") from None
    missing = [k for k in ("classifier", "labels", "features", "dim", "feature_params") if k not in meta]
    if missing:
        raise ModelError(f"{path} lacks {', '.join(missing)}: it was written by an older train stage; "
                         "retrain (dvc repro train) so predict can rebuild the exact feature extractor")
    return meta


def _feature_params(meta: dict, folder: Path, device: str | None = None):
    from pydantic import ValidationError

    from .config import Params

    raw = meta["feature_params"]
    if device:
        raw = {**raw, "features": {**raw.get("features", {}), "device": device}}
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ModelError(f"{folder}/model.json: feature_params are not valid for this code "
                         f"(trained with a different version?):\n{err}") from None


def _import_skops_without_torch(module: str) -> None:
    """Import ``skops.io`` with torch hidden, if ``module`` uses skops and torch is not loaded yet.

    Importing skops.io lists scikit-learn's estimators by importing every sklearn package, which
    imports torch (sklearn.externals.array_api_compat.torch) when it is installed: seconds of
    startup for nothing, as no skops-saved model needs torch. Hidden, that one package fails to
    import and is skipped; skops trusts exactly the same types.
    """
    import importlib.util
    import sys

    if "torch" in sys.modules or "skops.io" in sys.modules:
        return
    spec = importlib.util.find_spec(module)
    if not (spec and spec.origin and "skops" in Path(spec.origin).read_text(errors="ignore")):
        return
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` raise ImportError
    try:
        import skops.io  # noqa: F401
    except ImportError:
        pass
    finally:
        del sys.modules["torch"]


SKOPS_INTERNALS = frozenset({"sklearn.calibration._CalibratedClassifier"})  # plain classes, no estimator


def _check_skops_types(folder: Path) -> None:
    """Refuse a ``.skops`` file naming any type beyond skops' defaults other than scikit-learn (or
    ser.classifiers) estimator classes: skops calls a trusted name with stored arguments on load, so
    trusting e.g. every ``numpy.*`` name would let a crafted file run ``numpy.load(...,
    allow_pickle=True)`` on a pickle shipped beside it."""
    files = sorted(folder.glob("*.skops"))
    if not files:
        return
    import skops.io as sio

    for path in files:
        try:
            names = sio.get_untrusted_types(file=path)
        except Exception as err:  # noqa: BLE001 - unreadable means unusable
            raise ModelError(f"{path}: not a readable skops file ({type(err).__name__}: {err})") from None
        unsafe = [n for n in names if not _estimator_class(n)]
        if unsafe:
            raise ModelError(f"{path} names {', '.join(unsafe)}, which are not scikit-learn estimator classes; "
                             "refusing to load it (a skops file can make such names run on load)")


def _estimator_class(name: str) -> bool:
    import importlib

    from sklearn.base import BaseEstimator

    if name in SKOPS_INTERNALS:
        return True
    module, _, attr = name.rpartition(".")
    if not module.startswith(("sklearn.", "ser.classifiers.")):
        return False
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return False
    return isinstance(obj, type) and issubclass(obj, BaseEstimator)


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _check_settings(built: dict, stored: dict, folder: Path) -> None:
    built, stored = _plain(built), _plain(stored)
    if built == stored:
        return
    keys = sorted(set(built) | set(stored))
    diff = [f"{k}: trained {stored.get(k, '(absent)')!r}, rebuilt {built.get(k, '(absent)')!r}"
            for k in keys if built.get(k) != stored.get(k)]
    hints = {"float16": "float16 vectors come from CUDA: predict on a GPU (--device cuda) or retrain on this device.",
             "float32": "float32 vectors come from the CPU or MPS: predict with --device cpu."}
    hint = "\n" + hints.get(stored.get("dtype"), "") if built.get("dtype") != stored.get("dtype") else ""
    raise ModelError(f"{folder}: the model was trained on different features than this code computes "
                     f"from its feature_params; refusing to predict with mismatched features:\n  "
                     + "\n  ".join(diff) + "\nRetrain (dvc repro) or point --models at the matching folder." + hint)


def _check_dim(extractor: Any, dim: int, folder: Path) -> None:
    sr = int(extractor.sample_rate)
    t = np.arange(sr) / sr
    probe = (0.1 * np.sin(2 * np.pi * 220 * t) + 0.01 * np.random.default_rng(0).standard_normal(sr))
    got = np.asarray(extractor.transform([probe.astype(np.float32)])).shape[-1]
    if got != dim:
        raise ModelError(f"{folder}: the rebuilt extractor gives {got}-dimensional features, the model "
                         f"was trained on {dim}; refusing to predict with mismatched features")


def _temperature(folder: Path, labels: list[str]) -> float:
    path = folder / "calibration.json"
    if not path.exists():
        log.warning("%s not found: probabilities are not temperature-calibrated", path)
        return 1.0
    try:
        cal = json.loads(path.read_text())
        temperature = float(cal["temperature"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ModelError(f"{path} is unusable ({type(err).__name__}: {err}); retrain or delete it") from None
    if not (math.isfinite(temperature) and temperature > 0):
        raise ModelError(f"{path}: temperature {temperature} must be a positive number")
    if "labels" in cal and list(cal["labels"]) != list(labels):
        raise ModelError(f"{path} was fit for labels {cal['labels']}, the model has {labels}")
    return temperature


# -- output ---------------------------------------------------------------------------------------

def rows(result: FileResult, labels: list[str]) -> list[dict]:
    """Flat rows: the utterance (segment 'all'), then each segment when the file was cut."""
    def row(segment: str, start: float, end: float, proba: np.ndarray | None) -> dict:
        out = {"path": result.path, "segment": segment, "start": start, "end": end,
               "predicted": "", "confidence": ""}
        if proba is not None:
            out["predicted"], out["confidence"] = labels[int(np.argmax(proba))], round(float(proba.max()), 4)
        out.update({f"p_{lab}": (round(float(proba[i]), 4) if proba is not None else "")
                    for i, lab in enumerate(labels)})
        out["error"] = result.error
        return out

    out = [row("all", 0.0, result.duration, result.proba)]
    if result.segmented:
        out += [row(str(i + 1), s.start, s.end, s.proba) for i, s in enumerate(result.segments)]
    return out


def as_json(result: FileResult, labels: list[str]) -> dict:
    """Nested JSON record of one file: summary plus a list of segments."""
    def probs(p: np.ndarray) -> dict:
        return {lab: round(float(p[i]), 4) for i, lab in enumerate(labels)}

    out: dict[str, Any] = {"path": result.path, "duration": result.duration}
    if result.error:
        return {**out, "error": result.error}
    out.update(predicted=labels[int(np.argmax(result.proba))], confidence=round(float(result.proba.max()), 4),
               probabilities=probs(result.proba))
    out["segments"] = [{"start": s.start, "end": s.end, "predicted": labels[int(np.argmax(s.proba))],
                        "confidence": round(float(s.proba.max()), 4), "probabilities": probs(s.proba)}
                       for s in result.segments]
    return out


def write_output(path: str | Path, results: list[FileResult], labels: list[str], info: dict | None = None) -> Path:
    """``.json``: {model, files: [...]}; anything else: CSV with one row per file and per segment."""
    from .io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".json":
            payload = {"model": info or {}, "labels": labels, "files": [as_json(r, labels) for r in results]}
            tmp.write_text(json.dumps(payload, indent=2) + "\n")
        else:
            flat = [row for r in results for row in rows(r, labels)]
            fields = ["path", "segment", "start", "end", "predicted", "confidence",
                      *[f"p_{lab}" for lab in labels], "error"]
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(flat)
    return path


def format_row(row: dict, labels: list[str], width: int = 40) -> str:
    """One printable line of the table (see :func:`table_header`)."""
    path = row["path"] if row["segment"] == "all" else f"  segment {row['segment']}"
    path = path if len(path) <= width else "…" + path[-(width - 1):]
    span = f"{row['start']:7.2f} {row['end']:7.2f}"
    if row["error"]:
        return f"{path:<{width}} {span}  ERROR: {row['error']}"
    probs = " ".join(f"{row[f'p_{lab}']:>{max(5, len(lab))}.2f}" for lab in labels)
    return f"{path:<{width}} {span}  {row['predicted']:<12} {row['confidence']:>5.2f}  {probs}"


def table_header(labels: list[str], width: int = 40) -> str:
    probs = " ".join(f"{lab:>{max(5, len(lab))}}" for lab in labels)
    return f"{'path':<{width}} {'start':>7} {'end':>7}  {'emotion':<12} {'conf':>5}  {probs}"
