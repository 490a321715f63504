"""ser: a speech emotion recognition library behind the DVC pipeline in ``stages/``."""

__version__ = "0.1.0"
