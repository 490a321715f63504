"""Predictions a user can trust: rejection of unfamiliar input (:mod:`ser.trust.novelty`, cross-fitted
by :mod:`ser.trust.crossfit`) and per-prediction uncertainty (:mod:`ser.trust.uncertainty`)."""
