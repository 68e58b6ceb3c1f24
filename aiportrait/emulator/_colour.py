"""LAB colour statistics and conversions, shared by the face models, compositing and text-to-image.

Images are float RGB in 0..255; OpenCV's float LAB has L in 0..100 and a, b around 0.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ["F32", "FloatArray", "from_lab", "lab_stats", "to_lab"]

FloatArray = NDArray[np.float64]
F32 = NDArray[np.float32]


def to_lab(rgb: NDArray[Any]) -> F32:
    """RGB (0..255) to float LAB."""
    return np.asarray(cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB), np.float32)


def from_lab(lab: F32) -> F32:
    """Float LAB back to RGB (0..255, not clipped)."""
    return np.asarray(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB) * 255.0, np.float32)


def lab_stats(pixels: F32) -> tuple[FloatArray, FloatArray]:
    """Mean and standard deviation of LAB ``pixels`` (N x 3); a typical skin tone for none."""
    if len(pixels) == 0:
        return np.array([60.0, 15.0, 20.0]), np.array([15.0, 5.0, 5.0])
    return pixels.mean(axis=0).astype(np.float64), pixels.std(axis=0).astype(np.float64) + 1e-3
