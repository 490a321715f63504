"""Corpora and audio reading: the corpus registry and its scans, downloads, the audio checks, the manifest."""
