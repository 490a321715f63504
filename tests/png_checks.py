"""Is a PNG a real picture: readable, big enough, and not one flat colour."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np


def ink(path: str | Path) -> float:
    """Fraction of pixels that are visibly not white."""
    rgb = mpimg.imread(path)[..., :3]
    return float((rgb.min(axis=-1) < 0.9).mean())


def assert_picture(path: str | Path, min_ink: float = 0.03, min_side: int = 150) -> np.ndarray:
    """The image at ``path`` (H, W, channels), checked to be at least ``min_side`` pixels a side with
    at least ``min_ink`` of its pixels drawn on."""
    path = Path(path)
    assert path.is_file() and path.stat().st_size > 2000, path
    image = mpimg.imread(path)
    assert min(image.shape[:2]) >= min_side, (path, image.shape)
    assert ink(path) >= min_ink, (path, ink(path))
    return image
