"""Models: classifiers, cross-validation, tuning, calibration, training and the model card."""
