"""Loading a models folder's parts: the training extractor, rebuilt and checked against the card's
feature identity, and the classifier, without letting its files run code.

Every classifier saves in its own safe format (JSON, XGBoost's JSON, or skops). skops calls the type
names a file lists, so a ``.skops`` file naming anything but scikit-learn estimator classes is refused
before it is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ser.errors import ConfigError, FeatureError, ModelError
from ser.models.model_card import ModelCard, check_identity


def load_parts(folder: Path, card: ModelCard, device: str | None, encoder: str | None, denoiser: str | None,
               allow_download: bool, precision: str = "fp32") -> tuple[Any, Any, Any]:
    """(extractor, classifier, Params) of a models folder (:func:`rebuild_extractor`, :func:`load_classifier`) or
    of an exported bundle (:func:`ser.export.bundle.load_parts`; ``precision``: its fp32 or int8 encoder)."""
    from ser.export import bundle

    if bundle.is_bundle(folder):
        return bundle.load_parts(folder, card, precision, device, encoder, denoiser, allow_download)
    if precision != "fp32":
        raise ModelError(f"{folder} is a models folder (torch, fp32); --precision {precision} needs an exported "
                         "bundle: python -m stages.export --int8")
    extractor, params = rebuild_extractor(card, folder, device, encoder, denoiser, allow_download)
    return extractor, load_classifier(folder, card.classifier, card.dim), params


def rebuild_extractor(card: ModelCard, folder: Path, device: str | None, encoder: str | None,
                      denoiser: str | None = None, allow_download: bool = False) -> tuple[Any, Any]:
    """The training extractor rebuilt from the card's feature params (``device``, ``encoder``, ``denoiser``
    replace features.device, features.model and preprocess.demucs_checkpoint), refused unless its identity
    is the training one. Its encoder loads from safetensors files only, and from local files only unless
    ``allow_download``."""
    from ser import features
    from ser.features import checkpoints

    params = card_params(card, folder, device, encoder, denoiser)
    try:
        with checkpoints.for_prediction(allow_download):
            extractor = features.build(params, audio=card.identity.get("extractor") == "audio")
    except ConfigError as err:  # e.g. trained with features.device: cuda, and this machine has none
        raise ModelError(f"{folder}/model.json: {err} (pick another device with --device)") from None
    except FeatureError as err:  # the encoder folder moved, or a hub model is not cached here
        raise ModelError(f"{folder}/model.json: {err}\nIf the encoder now lies elsewhere, pass its folder with "
                         "--encoder PATH") from None
    except FileNotFoundError as err:  # the Demucs checkpoint of preprocess.denoise moved
        raise ModelError(f"{folder}/model.json: {err}\nIf it now lies elsewhere, pass it with --denoiser PATH"
                         ) from None
    check_identity(extractor.identity(), card.identity, folder)
    _check_dim(extractor, card.dim, folder)
    return extractor, params


def card_params(card: ModelCard, folder: Path, device: str | None = None, encoder: str | None = None,
                denoiser: str | None = None) -> Any:
    """The training run's Params from the card's feature params, with ``device``, ``encoder`` and ``denoiser``
    in place of features.device, features.model and preprocess.demucs_checkpoint."""
    from pydantic import ValidationError

    from ser.config import Params

    raw = dict(card.feature_params)
    overrides = {k: v for k, v in (("device", device), ("model", encoder)) if v}
    raw["features"] = {**raw.get("features", {}), **overrides}
    if denoiser:
        raw["preprocess"] = {**raw.get("preprocess", {}), "demucs_checkpoint": denoiser}
    raw["classifier"] = card.classifier  # vectors or frames: checked against features.pooling
    raw["trust"] = {"novelty": card.novelty.method}
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ModelError(f"{folder}/model.json: feature_params are not valid for this code "
                         f"(trained with a different version? retrain):\n{err}") from None


def _check_dim(extractor: Any, dim: int, folder: Path) -> None:
    sr = int(extractor.sample_rate)
    t = np.arange(sr) / sr
    probe = (0.1 * np.sin(2 * np.pi * 220 * t) + 0.01 * np.random.default_rng(0).standard_normal(sr))
    got = np.asarray(extractor.transform([probe.astype(np.float32)])).shape[-1]
    if got != dim:
        raise ModelError(f"{folder}: the rebuilt extractor gives {got}-dimensional features, the model was "
                         f"trained on {dim}; refusing to predict with mismatched features (retrain: dvc repro train)")


def load_novelty(folder: Path, card: ModelCard) -> Any:
    """The fitted novelty score of ``folder`` (``novelty.npz``), checked against the card's method."""
    from ser.trust.novelty import FILE, Novelty

    try:
        novelty = Novelty.load(folder)
    except FileNotFoundError:
        raise ModelError(f"{folder}/{FILE} not found: the model folder is incomplete; retrain (dvc repro train)"
                         ) from None
    except Exception as err:  # noqa: BLE001 - a truncated or foreign file means the folder is unusable
        raise ModelError(f"{folder}/{FILE}: cannot read the novelty score: {type(err).__name__}: {err}") from None
    if novelty.method != card.novelty.method:
        raise ModelError(f"{folder}/{FILE} holds a {novelty.method} score, model.json says {card.novelty.method}; "
                         "the folder mixes two trainings: retrain (dvc repro train)")
    return novelty


def load_classifier(folder: Path, name: str, dim: int) -> Any:
    """The ``name`` classifier saved in ``folder``, checked to take ``dim`` features."""
    from ser.models import classifiers, layer_choice

    if name not in classifiers.REGISTRY:
        raise ModelError(f"{folder}/model.json: classifier {name!r} is not one of {', '.join(classifiers.REGISTRY)}")
    _import_skops_without_torch(classifiers.REGISTRY[name])
    _check_skops_types(folder)
    try:
        model = layer_choice.load(folder, name)
    except Exception as err:  # noqa: BLE001 - any failure to load means the folder is unusable
        raise ModelError(f"{folder}: cannot load the {name} model: {type(err).__name__}: {err}") from None
    expected = getattr(model, "n_features_in_", None)
    if expected is not None and int(expected) != dim:
        raise ModelError(f"{folder}: the {name} model expects {expected} features, model.json says {dim}")
    return model


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


def _check_skops_types(folder: Path) -> None:
    """Refuse a ``.skops`` file naming any type beyond skops' defaults other than scikit-learn (or
    ser.models.classifiers) estimator classes: skops calls a trusted name with stored arguments on load, so
    trusting e.g. every ``numpy.*`` name would let a crafted file run ``numpy.load(...,
    allow_pickle=True)`` on a pickle shipped beside it."""
    files = sorted(folder.rglob("*.skops"))  # an ensemble keeps its members in sub-folders
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

    module, _, attr = name.rpartition(".")
    if not module.startswith(("sklearn.", "ser.models.classifiers.")):
        return False
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return False
    return isinstance(obj, type) and issubclass(obj, BaseEstimator)
