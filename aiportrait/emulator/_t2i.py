"""Text-to-image for the local emulator: a simple scene painted from the prompt's words.

Where the cloud paints the prompt with Stable Diffusion, :func:`t2i_template` paints a
deterministic scene keyed by words of the prompt (sky, ground, details, clothes, hair) with a
head-and-shoulders figure, and :func:`t2i_compose` fuses the user's face onto the painted head. A
scene model lends its palette and thumbnail. Synchronous and thread-safe.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import re
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from .._vision.images import RGBImage
from ._colour import FloatArray, from_lab
from ._composite import finish, fuse
from ._faces import CANONICAL_UNITS, FaceModel
from ._options import ComposeOptions
from ._scenes import SceneModel

__all__ = ["t2i_compose", "t2i_template"]

_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (190, 40, 45),
    "pink": (235, 150, 180),
    "orange": (235, 130, 40),
    "yellow": (240, 210, 60),
    "green": (60, 140, 70),
    "blue": (50, 90, 180),
    "purple": (120, 70, 160),
    "white": (240, 240, 235),
    "black": (30, 30, 35),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "brown": (110, 70, 40),
}
_HAIR: dict[str, tuple[int, int, int]] = {
    "blonde": (215, 180, 110),
    "brown": (95, 60, 35),
    "black": (25, 22, 22),
    "red": (150, 60, 30),
    "white": (225, 225, 220),
    "grey": (150, 150, 150),
}
_CLOTHES = ("sweater", "dress", "shirt", "jacket", "coat", "suit", "uniform", "top", "cloth")


@dataclass(frozen=True)
class _Scene:
    """What the prompt asks for, as the painter understands it."""

    sky_top: tuple[int, int, int]
    sky_bottom: tuple[int, int, int]
    ground: tuple[int, int, int]
    horizon: float
    words: frozenset[str]
    clothes: tuple[int, int, int]
    hair: tuple[int, int, int]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def _has(words: frozenset[str], *keys: str) -> bool:
    return any(key in words for key in keys)


def _sky(words: frozenset[str]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    if _has(words, "night", "dark", "stars", "moon"):
        return (10, 14, 40), (40, 50, 90)
    if _has(words, "sunset", "dusk", "sunrise", "dawn"):
        return (90, 70, 140), (250, 160, 90)
    if _has(words, "indoor", "indoors", "studio", "room", "office"):
        return (200, 190, 175), (225, 215, 200)
    if _has(words, "snow", "winter"):
        return (190, 200, 215), (235, 238, 242)
    return (90, 150, 225), (200, 225, 245)


def _ground(words: frozenset[str]) -> tuple[tuple[int, int, int], float]:
    if _has(words, "beach", "sea", "ocean", "sand"):
        return (225, 205, 160), 0.62
    if _has(words, "garden", "flower", "flowers", "park", "grass", "forest", "outdoors", "tree"):
        return (70, 135, 60), 0.6
    if _has(words, "city", "street", "urban"):
        return (95, 95, 100), 0.7
    if _has(words, "snow", "winter"):
        return (245, 247, 250), 0.6
    return (150, 135, 120), 0.72


def _clothes(tokens: list[str], rng: np.random.Generator) -> tuple[int, int, int]:
    for first, second in itertools.pairwise(tokens):
        if first in _COLOURS and second in _CLOTHES:
            return _COLOURS[first]
    named = [_COLOURS[t] for t in tokens if t in _COLOURS]
    if named:
        return named[0]
    r, g, b = (int(v) for v in rng.integers(40, 200, 3))
    return r, g, b


def _hair(tokens: list[str]) -> tuple[int, int, int]:
    for first, second in itertools.pairwise(tokens):
        if second == "hair" and first in _HAIR:
            return _HAIR[first]
    for token in tokens:
        if token.endswith("hair") and token[:-4] in _HAIR:
            return _HAIR[token[:-4]]
        if token in ("blonde", "brunette"):
            return _HAIR["blonde" if token == "blonde" else "brown"]
    return _HAIR["brown"]


def _read_prompt(prompt: str, scene: SceneModel | None, rng: np.random.Generator) -> _Scene:
    text = prompt + " " + " ".join(scene.prompts if scene else [])
    tokens = _words(text.replace("_", " "))
    words = frozenset(tokens)
    top, bottom = _sky(words)
    ground, horizon = _ground(words)
    if scene is not None and len(scene.palette) >= 3:
        bottom, top = _rgb(scene.palette[-1]), _rgb(scene.palette[len(scene.palette) // 2])
        ground = _rgb(scene.palette[0])
    return _Scene(top, bottom, ground, horizon, words, _clothes(tokens, rng), _hair(tokens))


def _rgb(values: NDArray[Any]) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in values[:3])
    return r, g, b


def _seed(*parts: str) -> int:
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def _paint_background(spec: _Scene, size: tuple[int, int], rng: np.random.Generator) -> RGBImage:
    width, height = size
    horizon = int(height * spec.horizon)
    t = np.linspace(0.0, 1.0, horizon)[:, None]
    sky = np.array(spec.sky_top) * (1 - t) + np.array(spec.sky_bottom) * t
    canvas = np.zeros((height, width, 3), np.float32)
    canvas[:horizon] = sky[:, None, :]
    shade = np.linspace(1.0, 0.75, height - horizon)[:, None, None]
    canvas[horizon:] = np.array(spec.ground, np.float32) * shade
    image = np.clip(canvas, 0, 255).astype(np.uint8)
    _paint_details(image, spec, horizon, rng)
    return image


def _paint_details(image: RGBImage, spec: _Scene, horizon: int, rng: np.random.Generator) -> None:
    height, width = image.shape[:2]
    words = spec.words
    if _has(words, "city", "street", "urban"):
        for _ in range(9):
            x, w = int(rng.integers(0, width)), int(rng.integers(width // 12, width // 5))
            top = int(rng.integers(horizon // 5, horizon * 3 // 4))
            grey = int(rng.integers(60, 140))
            cv2.rectangle(image, (x, top), (x + w, horizon), (grey, grey, grey + 10), -1)
    if _has(words, "beach", "sea", "ocean"):
        cv2.rectangle(image, (0, horizon - height // 14), (width, horizon), (40, 110, 170), -1)
    if _has(words, "night", "stars"):
        for _ in range(60):
            point = (int(rng.integers(0, width)), int(rng.integers(0, horizon)))
            cv2.circle(image, point, 1, (255, 255, 230), -1)
    if _has(words, "garden", "flower", "flowers", "bouquet", "hydrangea", "rose", "park"):
        palette = [c for n, c in _COLOURS.items() if n in words] or [
            (240, 240, 235),
            (235, 150, 180),
        ]
        for _ in range(80):
            point = (int(rng.integers(0, width)), int(rng.integers(horizon, height)))
            colour = palette[int(rng.integers(0, len(palette)))]
            cv2.circle(image, point, int(rng.integers(4, 12)), colour, -1)
    if _has(words, "sun", "sunlight", "sunny", "sunset"):
        cv2.circle(image, (width * 4 // 5, horizon // 4), max(8, width // 14), (255, 235, 170), -1)


def _head_layout(size: tuple[int, int]) -> tuple[FloatArray, float]:
    """Where the painted head's eyes go: their midpoint and their distance, in pixels."""
    width, height = size
    eye_distance = 0.115 * min(width, height * 0.75)
    return np.array([width / 2, height * 0.33]), eye_distance


def _paint_figure(
    image: RGBImage, spec: _Scene, skin: tuple[int, int, int], size: tuple[int, int]
) -> None:
    height = size[1]
    mid, eyes = _head_layout(size)
    cx, cy = int(mid[0]), int(mid[1] + 0.45 * eyes)
    head_axes = (int(1.15 * eyes), int(1.55 * eyes))
    cv2.ellipse(
        image,
        (cx, cy - int(0.25 * eyes)),
        (int(1.5 * eyes), int(1.75 * eyes)),
        0,
        0,
        360,
        spec.hair,
        -1,
    )
    neck_top, neck_half = cy + int(1.2 * eyes), int(0.55 * eyes)
    cv2.rectangle(
        image, (cx - neck_half, neck_top), (cx + neck_half, cy + int(2.4 * eyes)), skin, -1
    )
    shoulders, half = (cx, cy + int(3.8 * eyes)), int(2.9 * eyes)
    cv2.ellipse(image, shoulders, (half, int(1.6 * eyes)), 0, 180, 360, spec.clothes, -1)
    cv2.rectangle(image, (cx - half, shoulders[1]), (cx + half, height), spec.clothes, -1)
    cv2.ellipse(image, (cx, cy), head_axes, 0, 0, 360, skin, -1)


def t2i_template(
    prompt: str,
    *,
    size: tuple[int, int] = (768, 1024),
    scene: SceneModel | None = None,
    skin: tuple[int, int, int] = (225, 185, 160),
) -> RGBImage:
    """Paint a deterministic scene for ``prompt`` (``size`` is width, height), without a face.

    The same prompt (and scene) always gives the same picture. Words choose the sky (night,
    sunset, indoor, snow), the ground (beach, garden/flower, city, snow), details (stars,
    flowers, buildings, sea, sun), the clothes ("green sweater") and the hair ("brown_hair").
    A scene model lends its palette and a blurred wash of its thumbnail. The figure's head is a
    blank ``skin`` oval whose eyes sit where :func:`t2i_compose` puts the user's face.
    """
    rng = np.random.default_rng(_seed(prompt, scene.scene_id if scene else ""))
    spec = _read_prompt(prompt, scene, rng)
    image: Any = _paint_background(spec, size, rng)
    if scene is not None:
        wash = cv2.resize(scene.thumbnail, size, interpolation=cv2.INTER_LINEAR)
        wash = cv2.GaussianBlur(wash, (0, 0), max(size) / 60)
        image = cv2.addWeighted(image, 0.6, wash, 0.4, 0.0)
    if _has(spec.words, "bokeh", "blurry", "blur"):
        image = cv2.GaussianBlur(image, (0, 0), max(size) / 150)
    painted: RGBImage = np.ascontiguousarray(image, np.uint8)
    _paint_figure(painted, spec, skin, size)
    return painted


def _skin_rgb(model: FaceModel) -> tuple[int, int, int]:
    lab = model.color_mean.astype(np.float32).reshape(1, 1, 3)
    return _rgb(np.clip(from_lab(lab).reshape(3), 0, 255))


def t2i_compose(
    prompt: str,
    model: FaceModel,
    options: ComposeOptions,
    *,
    scene: SceneModel | None = None,
    size: tuple[int, int] = (768, 1024),
) -> RGBImage:
    """Text-to-image: the :func:`t2i_template` scene with the user's face on the painted head.

    The head's position is known, so no detection is needed; the face is blended at full strength
    (a blank head shows through anything less), then the usual ``configure`` operations apply.
    """
    template = t2i_template(prompt, size=size, scene=scene, skin=_skin_rgb(model))
    mid, eyes = _head_layout(size)
    target = mid + CANONICAL_UNITS * eyes
    # The painted head is plain skin: no colour to match, and a wider mask lets the user's own
    # hairline show.
    opts = dataclasses.replace(
        options,
        color_shift_middle=False,
        face_shape_match=True,
        first_denoising_strength=max(options.first_denoising_strength, 0.9),
    )
    original = template.astype(np.float32)
    canvas = original.copy()
    mask = fuse(canvas, original, model, target, opts, 1.0)
    return finish(canvas, mask, opts)
