"""Short names for what a run measured, shared by metrics.json and the figure titles."""

from __future__ import annotations

from pathlib import Path


def dataset_label(dataset: str) -> str:
    """The dataset name, flagged when the audio is generated."""
    return dataset + (" (SYNTHETIC audio)" if dataset == "synthetic" else "")


def feature_source(features: dict) -> dict:
    """``{"extractor", "model"}`` of a features.json (from its feature params; a model only for the
    neural extractors, which have one)."""
    section = features.get("feature_params", {}).get("features", {})
    source = {"extractor": section.get("extractor", "unknown")}
    if source["extractor"] in ("ssl", "whisper"):
        source["model"] = section.get("model")
    return source


def short_model(settings: dict) -> str:
    """The pretrained model behind the features (hub id, or a local folder's name), 'none' for
    hand-crafted features (MFCC, eGeMAPS)."""
    model = settings.get("model")
    if not model:
        return "none"
    model = str(model)
    return Path(model).name if model.startswith(("/", ".", "~")) else model


def features_label(settings: dict) -> str:
    """'mfcc', or 'ssl (microsoft/wavlm-large)': the extractor and its model, from features.json."""
    model = short_model(settings)
    extractor = settings.get("extractor", "unknown")
    return extractor if model == "none" else f"{extractor} ({model})"
