"""A trained models folder as a portable ONNX bundle, and a bundle as the parts :class:`ser.inference.predict.Predictor`
runs (so ``stages.predict`` and ``stages.serve`` take bundles as they take models folders).

A bundle folder holds ``encoder.onnx`` (and ``encoder.int8.onnx`` with ``int8``; :mod:`ser.export.encoder_graph`),
``head_<k>.onnx`` (:mod:`ser.export.head_graph`), ``bundle.json`` (what the glue needs: input kind,
sample rate, layers and pooling, head members, labels, temperature, novelty method and threshold), the
model card ``model.json`` (labels, feature identity, preprocessing settings, training context),
``novelty.npz``, Whisper's ``mel_filters.npy``, and ``runtime.py`` (:mod:`ser.export.runtime`, numpy +
onnxruntime only). MFCC and eGeMAPS models export their head only: their features are computed in
Python by this project (the card rebuilds the extractor), and ``runtime.Bundle.embed`` says so.

Export checks itself: generated clips of several lengths, batched together, go through the torch
model and the bundle; it fails if any probability differs by more than ``TOLERANCE`` (fp32).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ser.artifacts import read_json, write_json
from ser.errors import ModelError

log = logging.getLogger(__name__)
MANIFEST = "bundle.json"
TOLERANCE = 1e-4
FORMAT = 1
NEURAL = ("ssl", "whisper")  # the extractors whose encoder becomes a graph; the others stay in Python


def is_bundle(folder: str | Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def export(models: str | Path, out: str | Path, int8: bool = False, encoder: str | None = None) -> dict:
    """Write the bundle of ``models`` to ``out`` (built beside it, then renamed into place; an earlier bundle
    there is replaced, anything else is refused); its manifest. ``encoder``: the training encoder's folder,
    when it has moved."""
    from ser.inference.model_files import load_classifier, load_novelty, rebuild_extractor
    from ser.inference.predict import Predictor
    from ser.models import model_card

    models, out = Path(models), Path(out).absolute()
    _check_destination(models, out)
    card = model_card.read(models)
    _check_exportable(card, models)
    if int8 and card.identity.get("extractor") not in NEURAL:
        raise ModelError(f"--int8 quantises a neural encoder; {models} uses {card.identity.get('extractor')} "
                         "features (computed in Python), so there is nothing to quantise")
    extractor, _ = rebuild_extractor(card, models, "cpu", encoder)
    model = load_classifier(models, card.classifier, card.dim)
    predictor = Predictor(extractor, model, card, load_novelty(models, card))
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        manifest = _write(predictor, models, tmp, int8)
        old = out.with_name(f".{out.name}.old")
        if out.exists():  # an earlier bundle (checked above): moved aside, removed once the new one is in place
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote %s: %s, %d head graph(s); self-check: probabilities within %.1e of torch", out,
             ", ".join(manifest["encoder"]["files"].values()) or "no encoder graph",
             len(manifest["head"]["members"]), manifest["check"]["max_abs_diff"])
    return manifest


def _write(predictor: Any, models: Path, tmp: Path, int8: bool) -> dict:
    """The bundle's files in ``tmp``, checked against ``predictor`` (the torch model)."""
    from ser.export import head_graph, runtime

    card, extractor = predictor.card, predictor.extractor
    info: dict[str, Any] = {"kind": card.identity.get("extractor"), "sample_rate": int(extractor.sample_rate),
                            "files": {}}
    if info["kind"] in NEURAL:
        info = write_encoder(extractor, tmp, int8)
    members = head_graph.export(predictor.model, card.classifier, tmp, card.dim)
    manifest = {"format": FORMAT, "labels": card.labels, "encoder": info, "head": {"members": members},
                "temperature": card.calibration.temperature,
                "novelty": {"method": card.novelty.method, "k": predictor.novelty.k,
                            "threshold": card.novelty.threshold if card.novelty.applies else None}}
    write_json(tmp / MANIFEST, manifest)
    for name in ("model.json", "novelty.npz"):
        shutil.copy2(models / name, tmp / name)
    shutil.copy2(runtime.__file__, tmp / "runtime.py")
    manifest["check"] = check(predictor, runtime.Bundle(tmp))
    write_json(tmp / MANIFEST, manifest)
    return manifest


def _check_destination(models: Path, out: Path) -> None:
    """``--out`` must be a new path or an earlier bundle: never the models folder, a file, or another folder."""
    if not out.resolve().name or out.resolve() == models.resolve() or models.resolve() in out.resolve().parents:
        raise ModelError(f"--out {out}: the bundle needs a folder of its own, not {models} or a folder inside it "
                         "(e.g. --out models.onnx)")
    if out.exists() and not is_bundle(out):
        raise ModelError(f"--out {out} exists and is not an exported bundle; choose a new path (nothing there is "
                         "replaced but an earlier bundle)")


def write_encoder(extractor: Any, folder: Path, int8: bool = False) -> dict:
    """``extractor``'s encoder graph in ``folder`` (``encoder.onnx``, with ``int8`` also ``encoder.int8.onnx``;
    Whisper's ``mel_filters.npy``); the manifest's ``encoder`` entry."""
    from ser.export import encoder_graph

    log.info("exporting the %s encoder (fp32) ...", extractor.kind)
    info = {**encoder_graph.export(extractor, folder / "encoder.onnx"), "files": {"fp32": "encoder.onnx"}}
    if extractor.kind == "whisper":
        np.save(folder / "mel_filters.npy", extractor.preprocessor.mel_filters.astype(np.float64))
    if int8:
        log.info("quantising its matrix products to int8 ...")
        encoder_graph.quantize(folder / "encoder.onnx", folder / "encoder.int8.onnx")
        info["files"]["int8"] = "encoder.int8.onnx"
    return info


def encoder_bundle(extractor: Any, folder: str | Path, int8: bool = False) -> Path:
    """A bundle of ``extractor``'s encoder alone, no head (its ``embed`` only; for benchmarks and tests)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    info = write_encoder(extractor, folder, int8)
    write_json(folder / MANIFEST, {"format": FORMAT, "labels": [], "encoder": info, "head": {"members": []},
                                   "temperature": 1.0, "novelty": {"method": "msp", "k": 0, "threshold": None}})
    return folder


def _check_exportable(card: Any, models: Path) -> None:
    from ser.export.head_graph import EXPORTABLE

    if card.classifier not in EXPORTABLE:
        raise ModelError(f"{models}: a {card.classifier} model does not export to ONNX; exported classifiers: "
                         f"{', '.join(EXPORTABLE)} (train one with classifier=svm, or serve this folder as it is)")
    f = card.feature_params
    chain = {k: v for k, v in f.get("preprocess", {}).items() if k in ("denoise", "vad", "normalize") and v != "none"}
    if card.identity.get("extractor") in NEURAL and chain:
        raise ModelError(f"{models}: trained with preprocess {chain}; the bundle's runtime runs no preprocess chain "
                         "(serve or predict with the models folder, or train with preprocess.* none)")
    normalize = f.get("features", {}).get("normalize", "none")
    if normalize != "none":
        raise ModelError(f"{models}: trained with features.normalize: {normalize}; the bundle's runtime classifies "
                         "one clip at a time (serve or predict with the models folder)")


def check(predictor: Any, bundle: Any, seed: int = 0) -> dict:
    """Generated clips of 0.6-4 s in one batch through ``predictor`` (torch) and ``bundle`` (onnxruntime; a bundle
    without an encoder graph classifies the predictor's features): ModelError if a probability differs by more
    than TOLERANCE."""
    rng = np.random.default_rng(seed)
    sr = bundle.sample_rate
    t = [np.arange(int(s * sr)) / sr for s in (0.6, 1.7, 4.0, 2.3)]
    waves = [(0.1 * np.sin(2 * np.pi * f * x * (1 + 0.1 * np.sin(3 * x))) + 0.01 * rng.standard_normal(len(x)))
             .astype(np.float32) for f, x in zip((140, 220, 180, 260), t)]
    X = predictor.extractor.transform(waves)
    expected, novelty = predictor._classify(X)
    got, got_novelty = bundle.classify(X if bundle.encoder is None else bundle.embed(waves))
    diff = float(np.abs(got - expected).max())
    if not diff <= TOLERANCE:
        raise ModelError(f"the exported bundle's probabilities differ from the model's by {diff:.2e} "
                         f"(> {TOLERANCE}): not written")
    return {"clips": len(waves), "max_abs_diff": diff, "max_novelty_diff": float(np.abs(got_novelty - novelty).max())}


class BundleEncoder:
    """A bundle's encoder graph as the extractor ``Predictor`` streams batches through."""

    def __init__(self, bundle: Any, identity: dict):
        self.bundle, self.sample_rate, self._identity = bundle, bundle.sample_rate, identity

    def transform(self, waves: list[np.ndarray]) -> np.ndarray:
        return self.bundle.embed(waves)

    def identity(self) -> dict:
        return self._identity


class BundleHead:
    """A bundle's head graphs as the classifier ``Predictor`` calls (probabilities before temperature)."""

    def __init__(self, bundle: Any):
        self.bundle, self.classes_ = bundle, np.arange(len(bundle.labels))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.bundle.head_proba(X)


def load_parts(folder: Path, card: Any, precision: str, device: str | None, encoder: str | None,
               denoiser: str | None, allow_download: bool) -> tuple[Any, Any, Any]:
    """(extractor, classifier, params) of a bundle for ``Predictor``: its graphs, or for MFCC/eGeMAPS bundles the
    extractor rebuilt in Python from the card. ModelError names a missing or unreadable file of the bundle."""
    from ser.export.runtime import Bundle
    from ser.inference.model_files import card_params, rebuild_extractor

    again = "export it again (python -m stages.export)"
    try:
        manifest = read_json(folder / MANIFEST)
        if manifest.get("format") != FORMAT:
            raise ModelError(f"{folder}/{MANIFEST}: bundle format {manifest.get('format')}, this code reads {FORMAT}: "
                             f"{again}")
        bundle = Bundle(folder, precision)
    except ModelError:
        raise
    except ValueError as err:  # no such precision, a manifest that is not JSON
        raise ModelError(f"{folder}: {err} ({again})") from None
    except Exception as err:  # noqa: BLE001 - a missing or truncated file (OSError, onnxruntime's own errors)
        raise ModelError(f"{folder}: the bundle is incomplete or damaged: {type(err).__name__}: {err}\n{again}"
                         ) from None
    head = BundleHead(bundle)
    if bundle.encoder is not None:
        if device not in (None, "auto", "cpu"):
            raise ModelError(f"{folder}: a bundle's encoder runs on the CPU (onnxruntime); leave out --device {device}")
        return BundleEncoder(bundle, card.identity), head, card_params(card, folder)
    if precision != "fp32":
        raise ModelError(f"{folder} has no encoder graph ({card.identity.get('extractor')} features are computed in "
                         f"Python): --precision {precision} does not apply")
    extractor, params = rebuild_extractor(card, folder, device, encoder, denoiser, allow_download)
    return extractor, head, params
