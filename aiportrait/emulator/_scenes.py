"""Scene models for the local emulator: the stand-in of an SDXL scene LoRA.

A scene is a six-colour palette of the scene photos, a thumbnail of the first, and the photos'
prompts; text-to-image paints with it. Everything is synchronous and thread-safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from .._files import make_dir
from .._vision.images import RGBImage, decode_image, encode_image
from ._files import atomic_write, load_npz, npz_bytes

__all__ = ["SCENE_SAMPLE_SIDE", "SceneModel", "build_scene", "scene_sample"]


@dataclass
class SceneModel:
    """The SDXL scene-LoRA stand-in: the scene photos' palette, a thumbnail and the prompts."""

    scene_id: str
    palette: NDArray[np.uint8]
    prompts: list[str]
    thumbnail: RGBImage

    def save(self, directory: Path) -> None:
        """Write the scene into ``directory`` (``scene.npz`` + ``thumbnail.png``)."""
        directory = Path(directory)
        make_dir(directory)
        atomic_write(directory / "thumbnail.png", encode_image(self.thumbnail, "PNG"))
        arrays = npz_bytes(
            scene_id=np.array(self.scene_id),
            palette=self.palette,
            prompts=np.array(self.prompts, dtype=np.str_),
        )
        atomic_write(directory / "scene.npz", arrays)

    @classmethod
    def load(cls, directory: Path) -> SceneModel:
        """Read a scene written by :meth:`save`."""
        directory = Path(directory)
        data = load_npz(directory / "scene.npz")
        return cls(
            scene_id=str(data["scene_id"]),
            palette=data["palette"].astype(np.uint8),
            prompts=[str(p) for p in data["prompts"].reshape(-1)],
            thumbnail=decode_image((directory / "thumbnail.png").read_bytes()),
        )


#: Long side of the scene sample kept of each scene photo.
SCENE_SAMPLE_SIDE = 256


def scene_sample(img: RGBImage) -> RGBImage:
    """What a scene "training" keeps of one photo: the photo at most 256 px long."""
    return _resize_long(img, SCENE_SAMPLE_SIDE) if max(img.shape[:2]) > SCENE_SAMPLE_SIDE else img


def build_scene(scene_id: str, images: Sequence[RGBImage], prompts: Sequence[str]) -> SceneModel:
    """Build a scene model ("training" a scene LoRA).

    The model is a six-colour palette (k-means over all photos) and a 256 px thumbnail of the
    first. ``images`` may be the photos or their :func:`scene_sample`; the result is the same.
    """
    if not images:
        raise ValueError("no scene photos")
    thumbs = [scene_sample(img) for img in images]
    samples = [_resize_long(img, 96).reshape(-1, 3) for img in thumbs]
    pixels = np.concatenate(samples).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    k = min(6, len(pixels))
    cv2.setRNGSeed(0)
    kmeans: Any = cv2.kmeans  # the stubs do not allow bestLabels=None
    _, _, centres = kmeans(pixels, k, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    order = np.argsort(centres @ np.array([0.299, 0.587, 0.114], np.float32))
    palette = np.clip(centres[order], 0, 255).astype(np.uint8)
    return SceneModel(scene_id, palette, list(prompts), _resize_long(thumbs[0], 256))


def _resize_long(img: RGBImage, side: int) -> RGBImage:
    scale = side / max(img.shape[:2])
    size = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(img, size, interpolation=interpolation), np.uint8)
