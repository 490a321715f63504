"""A fine-tuned model on disk: ``backbone/`` is the trained encoder as a checkpoint folder the extractors
load (config, preprocessor config, ``model.safetensors``; usable as ``features.model`` for frozen
features too), ``finetune.safetensors`` the heads, ``finetune.json`` settings, labels, vocabulary and
history. No pickle; loading executes no code."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ser.artifacts import atomic_path, read_json, write_json
from ser.finetune.estimator import FineTuner
from ser.models.classifiers.torch_training import cpu_state

BACKBONE_DIR = "backbone"
HEADS_FILE = "finetune.safetensors"
CONFIG_FILE = "finetune.json"


def save(model: FineTuner, folder: Path) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    encoder, net = model.net_.encoder, model.net_
    target = folder / BACKBONE_DIR
    target.mkdir(parents=True, exist_ok=True)
    encoder.config.save_pretrained(target)
    encoder.preprocessor.save_pretrained(target)
    # a Whisper backbone is the encoder of a WhisperModel: its weights under the encoder's prefix
    prefix = "encoder." if encoder.config.model_type == "whisper" else ""
    weights = cpu_state(net.backbone, prefix)
    with atomic_path(target / "model.safetensors") as tmp:
        save_file(weights, str(tmp), metadata={"format": "pt"})
    with atomic_path(folder / HEADS_FILE) as tmp:
        save_file(cpu_state(net.heads()), str(tmp))
    write_json(folder / CONFIG_FILE, {
        "settings": model.settings, "backbone": {**model.backbone, "model": BACKBONE_DIR},
        "random_state": model.random_state, "classes": model.classes_.tolist(), "vocab": model.vocab_,
        "best_epoch": model.best_epoch_, "history": model.history_, "fit_facts": model.fit_facts_})
    return folder / HEADS_FILE


def load(folder: Path) -> FineTuner:
    from safetensors.torch import load_file

    folder = Path(folder)
    c = read_json(folder / CONFIG_FILE)
    model = FineTuner(c["settings"], c["backbone"], c["random_state"])
    model.params_ = model._settings().model_copy(update={"device": "auto"})  # trained on a GPU, run anywhere
    model.classes_, model.vocab_ = np.asarray(c["classes"]), c["vocab"]
    model.best_epoch_, model.history_, model.fit_facts_ = c["best_epoch"], c["history"], c["fit_facts"]
    model._build(len(model.classes_), trainable=False, model=str(folder / BACKBONE_DIR))
    model.net_.heads().load_state_dict(load_file(folder / HEADS_FILE))
    model.net_.eval()
    return model
