"""openSMILE eGeMAPSv02 functionals: 88 hand-crafted prosodic, spectral and voice-quality statistics."""

from __future__ import annotations

import numpy as np

from ser.errors import ConfigError
from ser.features import identity, per_clip


class Egemaps:
    """The extended Geneva Minimalistic Acoustic Parameter Set (Eyben et al., 2016), one vector per clip."""

    def __init__(self, sample_rate: int = 16000):
        import opensmile

        self.sample_rate = sample_rate
        self.smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                     feature_level=opensmile.FeatureLevel.Functionals)

    def identity(self) -> dict:
        return identity("egemaps", ("opensmile",), feature_set="eGeMAPSv02", level="functionals",
                        sample_rate=self.sample_rate)

    def vector(self, wave: np.ndarray) -> np.ndarray:
        # openSMILE converts to 16-bit by scaling, so samples past full scale (gain, noise) would wrap around
        return self.smile(np.clip(wave, -1.0, 32767 / 32768), self.sample_rate)[0, :, 0]

    def transform(self, waves: list[np.ndarray]) -> np.ndarray:
        return per_clip(self.vector, waves)


def build(params) -> Egemaps:
    if params.features.pooling != "mean":
        raise ConfigError(f"features.pooling: {params.features.pooling} does not apply to egemaps, whose 88 "
                          "functionals are statistics of the whole clip already; set features.pooling: mean")
    return Egemaps(params.data.sample_rate)
