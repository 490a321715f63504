"""Tier-0 preprocessing of every clip before features: denoise, voice activity detection, level
normalisation (:mod:`ser.preprocess.pipeline`)."""
