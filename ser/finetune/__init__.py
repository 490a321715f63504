"""Fine-tuning a speech encoder on emotion, with speech recognition (CTC) and prosody as auxiliary tasks.

``classifier: finetune`` trains the encoder that ``features.extractor`` / ``features.model`` name, on the
clips' audio (the extract stage then stores audio, not embeddings: :mod:`ser.features.audio`):

- :mod:`ser.finetune.backbone`: the encoder, loaded by the extractor's code, run with gradients;
- :mod:`ser.finetune.network`: backbone + SER head (layer weights, attentive statistics pooling, MLP)
  + CTC head over characters + prosody head (frame pitch and energy);
- :mod:`ser.finetune.text` and :mod:`ser.finetune.prosody`: the auxiliary targets;
- :mod:`ser.finetune.estimator`: the estimator (fit / predict_proba) with per-epoch checkpoints;
- :mod:`ser.finetune.files`: the saved model (safetensors, no pickle).
"""
