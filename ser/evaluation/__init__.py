"""Evaluation: metrics, metrics.json, plots and the 2-D map."""
