"""Loading a pretrained checkpoint (a local folder or the Hugging Face hub cache) so that a model that is
neither on disk nor reachable fails at once with the fix, and a fingerprint of its weights computed from
the files themselves."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TypeVar

from ser.errors import FeatureError

log = logging.getLogger(__name__)
T = TypeVar("T")
# None while training (a hub model may be downloaded); while predicting (:func:`for_prediction`), whether it may be
_PREDICT_DOWNLOADS: ContextVar[bool | None] = ContextVar("predict_downloads", default=None)


@contextmanager
def for_prediction(allow_download: bool = False) -> Iterator[None]:
    """Load checkpoints as predict does: weights from safetensors files only (never a pickle), and from local
    files only unless ``allow_download``."""
    token = _PREDICT_DOWNLOADS.set(allow_download)
    before = os.environ.get("DISABLE_SAFETENSORS_CONVERSION")
    os.environ["DISABLE_SAFETENSORS_CONVERSION"] = "1"  # transformers would ask the hub to convert a .bin-only model
    try:
        yield
    finally:
        _PREDICT_DOWNLOADS.reset(token)
        if before is None:
            os.environ.pop("DISABLE_SAFETENSORS_CONVERSION", None)
        else:
            os.environ["DISABLE_SAFETENSORS_CONVERSION"] = before


def _local_weights(name: str) -> str | None:
    """'safetensors' or 'pickle': the format of the weights of folder or cached hub model ``name``; None if none."""
    names = {"safetensors": ("model.safetensors", "model.safetensors.index.json"),
             "pickle": ("pytorch_model.bin", "pytorch_model.bin.index.json")}
    for kind, files in names.items():
        if is_folder(name):
            if any((Path(name).expanduser() / f).is_file() for f in files):
                return kind
        else:
            from huggingface_hub import try_to_load_from_cache

            if any(isinstance(try_to_load_from_cache(name, f), str) for f in files):
                return kind
    return None


def is_folder(name: str) -> bool:
    return Path(name).expanduser().is_dir()


def _looks_like_path(name: str) -> bool:
    """A hub id is ``owner/name``; anything else with a slash is meant as a folder."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def _hub_reachable(timeout: float = 5.0) -> bool:
    """One quick request, so that a machine without internet fails in seconds, not after retries."""
    import requests
    from huggingface_hub import constants

    try:
        requests.head(constants.ENDPOINT, timeout=timeout)
    except requests.RequestException:
        return False
    return True


def unavailable(name: str, why: str) -> FeatureError:
    return FeatureError(
        f"features.model: cannot load {name!r}: {why}. Either run once where the Hugging Face hub is "
        f"reachable (the model is then cached under ~/.cache/huggingface), or save the model and its "
        f"feature extractor with save_pretrained into a folder and set `features.model: /path/to/local/folder`.")


def load_pretrained(loader: Callable[..., T], name: str, weights: bool = False, **kwargs) -> T:
    """``loader(name, ...)`` from a local folder or the hub cache; download only when the hub answers
    (and, under :func:`for_prediction`, only when allowed; ``weights``: a model loader, given safetensors only).

    A model that is neither on disk nor reachable raises FeatureError at once, naming the model
    and the ``features.model: /path/to/local/folder`` alternative.
    """
    predicting = _PREDICT_DOWNLOADS.get()
    if _looks_like_path(name) and not is_folder(name):
        raise unavailable(name, "no such folder")
    if weights and predicting is not None:
        kwargs["use_safetensors"] = True
        if _local_weights(name) == "pickle":
            raise unavailable(name, "predict loads weights from safetensors files only, and this model's are a pickled "
                                    "pytorch_model.bin; save a copy with save_pretrained (safetensors), train on that "
                                    "copy (features.model) and predict with it")
    try:
        return loader(name, local_files_only=True, **kwargs)
    except (OSError, ValueError) as err:
        if is_folder(name):
            raise unavailable(name, f"the folder does not hold a complete model ({err})") from None
    if predicting is False:
        raise unavailable(name, "it is not in the local Hugging Face cache, and predict downloads nothing unless "
                                "given --allow-download")
    if _offline():
        raise unavailable(name, "it is not in the local Hugging Face cache and HF_HUB_OFFLINE is set")
    if not _hub_reachable():
        raise unavailable(name, "it is not in the local Hugging Face cache and the hub cannot be reached")
    log.info("downloading %s from the Hugging Face hub", name)
    try:
        return loader(name, **kwargs)
    except (OSError, ValueError) as err:
        raise unavailable(name, str(err).splitlines()[0]) from None


WEIGHT_SUFFIXES = (".json", ".safetensors", ".bin", ".pt")  # weights, config and preprocessor config


def fingerprint(name: str) -> str:
    """A content hash of the checkpoint's files (weights, config, preprocessor config): of the folder
    ``name`` (or that one file), or of the hub model's cached snapshot. The same weights give the same fingerprint
    wherever they lie; reading them costs about a second per GB."""
    folder = Path(name).expanduser()
    if folder.is_file():  # a single weights file (the Demucs denoiser's)
        files = [folder]
    elif not folder.is_dir():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")
        if not isinstance(cached, str):
            raise unavailable(name, "it is not in the local Hugging Face cache, so its weights cannot be fingerprinted")
        folder = Path(cached).parent  # .../snapshots/<commit>/, links to the downloaded files
    if folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise unavailable(name, f"{folder} holds no weight or config files")
    digest = hashlib.sha1()
    for path in files:
        if folder.is_dir():  # a lone weights file may be renamed
            digest.update(path.name.encode())
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
    return f"sha1:{digest.hexdigest()}"


def load_preprocessor(model: str, default: Callable[[], T], what: str, allow_default: bool) -> T:
    """The checkpoint's preprocessor (it says how the input is normalised); without one, an error
    unless the user opted into ``default()`` (``features.default_preprocessor``), which is logged."""
    from transformers import AutoFeatureExtractor

    try:
        return load_pretrained(AutoFeatureExtractor.from_pretrained, model)
    except FeatureError:
        if not allow_default:
            raise FeatureError(f"{model} has no preprocessor config (preprocessor_config.json), which says how its "
                               f"input is normalised: add the file, or set features.default_preprocessor: true to "
                               f"use {what}") from None
    log.warning("%s has no preprocessor config; using %s (features.default_preprocessor: true)", model, what)
    return default()
