"""Saving a sequence classifier: weights as safetensors; settings, classes, input statistics and
history as JSON. Loading executes no code."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ser.artifacts import read_json, write_json
from ser.models.classifiers.devices import torch_device
from ser.models.classifiers.sequence import SequenceClassifier
from ser.models.classifiers.torch_training import cpu_state

WEIGHTS_FILE = "sequence.safetensors"
CONFIG_FILE = "sequence.json"


def save(model: SequenceClassifier, folder: Path) -> Path:
    """Weights as safetensors; settings, classes, input statistics and history as JSON (no pickle)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    save_file(cpu_state(model.module_), folder / WEIGHTS_FILE)
    write_json(folder / CONFIG_FILE, {
        "kind": model.kind, "settings": model.settings, "random_state": model.random_state,
        "classes": model.classes_.tolist(), "layers": model.n_layers_, "dim": model.dim_,
        "mean": model.mean_.tolist(), "std": model.std_.tolist(),
        "best_epoch": model.best_epoch_, "history": model.history_, "fit_facts": model.fit_facts_,
    })
    return folder / WEIGHTS_FILE


def load(folder: Path) -> SequenceClassifier:
    from safetensors.torch import load_file

    folder = Path(folder)
    c = read_json(folder / CONFIG_FILE)
    model = SequenceClassifier(c["kind"], c["settings"], c["random_state"])
    model.classes_ = np.asarray(c["classes"])
    model.n_layers_, model.dim_ = c["layers"], c["dim"]
    model.best_epoch_, model.history_, model.fit_facts_ = c["best_epoch"], c["history"], c["fit_facts"]
    model.params_ = model._settings()
    try:
        model.device_ = torch_device(model.params_.device)
    except ValueError:  # trained on a GPU this machine does not have
        model.device_ = "cpu"
    model._standardise_with(np.asarray(c["mean"], np.float32), np.asarray(c["std"], np.float32))
    model.module_ = model._network()
    model.module_.load_state_dict(load_file(folder / WEIGHTS_FILE))
    model.module_.to(model.device_).eval()
    return model
