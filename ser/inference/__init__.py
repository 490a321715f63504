"""Inference: predict on new recordings with a trained models/ folder."""
