"""Portrait compositing for the local emulator: the user's face put into a template, no diffusion.

Where the cloud paints a portrait with Stable Diffusion (EasyPhoto), :func:`compose` finds the
template's faces, warps the user's chip onto each with a transform fitted on the five landmarks,
shifts its colour to the template's skin and blends it with a feathered elliptical mask, then
applies the ``configure`` keys that have a natural image meaning (see
:class:`~._options.ComposeOptions`). :func:`fuse` and :func:`finish` are shared with
text-to-image, which fuses the face onto a painted head. Synchronous and thread-safe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from .._vision.face_engine import Face, FaceEngine
from .._vision.images import RGBImage
from ._colour import F32, FloatArray, from_lab, lab_stats, to_lab
from ._errors import ApiError
from ._faces import (
    EYE_DISTANCE,
    FaceModel,
    ReferenceModel,
    Region,
    chip_mask,
    fit_transform,
    work_region,
)
from ._options import ComposeOptions
from ._wire import E462_INVALID_INPUT, E462_NO_FACE, E469_FACE_COUNT

__all__ = ["FILM_LOOK_WEIGHT", "compose", "finish", "fuse"]


@dataclass
class _Fusion:
    """One face being fused: the user's face warped into a region, and its masks."""

    warped: F32
    mask: F32  # feathered full face, 0..1
    inner: F32  # feathered eyes-nose-mouth area, 0..1
    hard: NDArray[np.bool_] = field(repr=False)  # unfeathered face, for statistics


def _warp_mask(matrix: FloatArray, size: tuple[int, int], scale: float, feather: float) -> F32:
    mask = cv2.warpAffine(chip_mask(scale), matrix, size, flags=cv2.INTER_LINEAR)
    if feather > 0.5:
        mask = cv2.GaussianBlur(mask, (0, 0), feather)
    return np.asarray(mask, np.float32)


def _prepare(model: FaceModel, target: FloatArray, region: Region, opts: ComposeOptions) -> _Fusion:
    local = target - (region.x0, region.y0)
    matrix = fit_transform(model.chip_landmarks, local, full_affine=not opts.face_shape_match)
    warped = cv2.warpAffine(
        model.chip.astype(np.float32),
        matrix,
        region.size,
        flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REPLICATE,
    )
    pixels_per_chip_px = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    feather = pixels_per_chip_px * EYE_DISTANCE * (0.05 + 0.25 * opts.second_denoising_strength)
    scale = 0.85 + 0.33 * opts.first_denoising_strength
    return _Fusion(
        warped=np.asarray(warped, np.float32),
        mask=_warp_mask(matrix, region.size, scale, feather),
        inner=_warp_mask(matrix, region.size, 0.62, feather * 0.7),
        hard=_warp_mask(matrix, region.size, 0.8, 0.0) > 0.5,
    )


def _transfer_colour(warped: F32, model: FaceModel, target: F32, hard: NDArray[np.bool_]) -> F32:
    """Move the user's skin LAB statistics onto the template face's."""
    mean, std = lab_stats(to_lab(target)[hard])
    ratio = np.clip(std / model.color_std, 0.5, 2.0)
    lab = (to_lab(warped) - model.color_mean) * ratio + mean
    return np.clip(from_lab(lab.astype(np.float32)), 0, 255)


def _blend(base: F32, top: F32, weight: F32) -> F32:
    w = weight[..., None]
    return np.asarray(base * (1.0 - w) + top * w, np.float32)


def _shift_mean(result: F32, original: F32, hard: NDArray[np.bool_], mask: F32) -> F32:
    """``color_shift_last``: move the fused face's LAB mean onto the template face's."""
    lab = to_lab(result)
    delta = lab_stats(to_lab(original)[hard])[0] - lab_stats(lab[hard])[0]
    shifted = from_lab((lab + delta.astype(np.float32)).astype(np.float32))
    return _blend(result, np.clip(shifted, 0, 255), mask)


def _makeup(result: F32, original: F32, mask: F32, ratio: float) -> F32:
    """``makeup_transfer``: the template face's chroma (LAB a/b) mixed back in at ``ratio``."""
    lab, template = to_lab(result), to_lab(original)
    lab[..., 1:] = lab[..., 1:] * (1 - ratio) + template[..., 1:] * ratio
    return _blend(result, np.clip(from_lab(lab), 0, 255), mask)


def _retouch(result: F32, mask: F32) -> F32:
    """``skin_retouching_bool``: edge-preserving bilateral smoothing of the face."""
    smooth = cv2.bilateralFilter(result, 9, 30.0, 7.0)
    return _blend(result, np.asarray(smooth, np.float32), mask * 0.8)


def _photo_fix(result: F32, mask: F32) -> F32:
    """``photo_fix``: a light non-local-means denoise, only over the face's bounding box."""
    ys, xs = np.nonzero(mask > 0.05)
    if len(xs) == 0:
        return result
    box = slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
    patch = np.clip(result[box], 0, 255).astype(np.uint8)
    clean = np.asarray(cv2.fastNlMeansDenoisingColored(patch, None, 3, 3, 5, 11), np.float32)
    out: F32 = result.copy()
    out[box] = _blend(result[box], clean, mask[box])
    return out


def fuse(
    canvas: F32,
    original: F32,
    model: FaceModel,
    target: FloatArray,
    opts: ComposeOptions,
    identity: float,
) -> F32:
    """Fuse one user face onto one template face; returns the region's feathered face mask."""
    region = work_region(target, canvas.shape, opts.crop_face_preprocess)
    fusion = _prepare(model, target, region, opts)
    work, before = canvas[region.slices].copy(), original[region.slices]
    face = fusion.warped
    reference = model if isinstance(model, ReferenceModel) else None
    if opts.color_shift_middle and reference is None:
        face = _transfer_colour(face, model, before, fusion.hard)
    first = identity if opts.apply_face_fusion_before else identity / 2
    work = _blend(work, face, np.float32(first) * fusion.mask)
    if opts.apply_face_fusion_after:
        work = _blend(work, face, np.float32(identity / 2) * fusion.inner)
    work = _face_ops(work, before, fusion, opts)
    if reference is not None:
        spot = _spot(region, target.mean(axis=0) - (region.x0, region.y0))
        work = _carry_look(work, reference, spot * np.float32(opts.ipa_weight))
        if not opts.sdxl:
            work = _blend(work, _film_look(work, FILM_LOOK_WEIGHT), spot)
    weight = _region_weight(region, fusion.mask)
    if opts.crop_face_preprocess:
        work = _region_ops(work, opts)  # else once over the whole image, in _finish
    canvas[region.slices] = _blend(canvas[region.slices], work, weight)
    full = np.zeros(canvas.shape[:2], np.float32)
    full[region.slices] = fusion.mask
    return full


def _spot(region: Region, centre: FloatArray) -> F32:
    """A round, soft weight over the work region: 1 around ``centre`` (region coordinates),
    fading to nothing before the region's edges, so no box shows where the region ends."""
    width, height = region.size
    xs = (np.arange(width, dtype=np.float32) - np.float32(centre[0])) / np.float32(0.5 * width)
    ys = (np.arange(height, dtype=np.float32) - np.float32(centre[1])) / np.float32(0.5 * height)
    distance = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
    return np.asarray(np.clip(1.6 - 1.6 * distance, 0.0, 1.0), np.float32)


def _carry_look(work: F32, reference: ReferenceModel, weight: F32) -> F32:
    """Move the region's LAB statistics onto the reference photo's, blended by ``weight``."""
    lab = to_lab(work)
    mean, std = lab_stats(lab.reshape(-1, 3))
    ratio = np.clip(reference.look_std / std, 0.5, 2.0)
    moved = (lab - mean) * ratio + reference.look_mean
    return _blend(work, np.clip(from_lab(moved.astype(np.float32)), 0, 255), weight)


#: EasyPhoto's reference-only prompt carries ``<lora:FilmVelvia3:0.65>`` on SD1.5 (not on SDXL).
FILM_LOOK_WEIGHT = 0.65


def _film_look(work: F32, strength: float) -> F32:
    """A slide-film look (the FilmVelvia LoRA's): richer colour and more contrast."""
    lab = to_lab(work)
    lab[..., 0] = 50.0 + (lab[..., 0] - 50.0) * (1.0 + 0.35 * strength)
    lab[..., 1:] *= 1.0 + 0.8 * strength
    return np.asarray(np.clip(from_lab(lab), 0, 255), np.float32)


def _face_ops(work: F32, before: F32, fusion: _Fusion, opts: ComposeOptions) -> F32:
    if opts.color_shift_last:
        work = _shift_mean(work, before, fusion.hard, fusion.mask)
    if opts.makeup_transfer:
        work = _makeup(work, before, fusion.mask, opts.makeup_transfer_ratio)
    if opts.skin_retouching_bool:
        work = _retouch(work, fusion.mask)
    if opts.photo_enhancement_bool and opts.photo_enhancement_method == "photo_fix":
        work = _photo_fix(work, fusion.mask)
    return work


def _region_ops(work: F32, opts: ComposeOptions) -> F32:
    """Operations over the whole work region: detail enhancement and sharpening."""
    if opts.photo_enhancement_bool and opts.photo_enhancement_method == "super_resolution":
        detail = cv2.detailEnhance(np.clip(work, 0, 255).astype(np.uint8), None, 10, 0.15)
        work = np.asarray((work + detail.astype(np.float32)) / 2, np.float32)
    if opts.sharp_ratio > 0:
        blurred = cv2.GaussianBlur(work, (0, 0), 1.5)
        work = work + 2 * opts.sharp_ratio * (work - blurred)
    return np.asarray(np.clip(work, 0, 255), np.float32)


def _region_weight(region: Region, mask: F32) -> F32:
    """How the processed region is pasted back: a feathered rectangle (or everything)."""
    width, height = region.size
    if region.whole:
        return np.ones((height, width), np.float32)
    margin = max(2, min(width, height) // 8)
    ramp_x = np.clip(np.minimum(np.arange(width), np.arange(width)[::-1]) / margin, 0, 1)
    ramp_y = np.clip(np.minimum(np.arange(height), np.arange(height)[::-1]) / margin, 0, 1)
    weight = np.outer(ramp_y, ramp_x).astype(np.float32)
    return np.maximum(weight, mask)


def _restore_background(canvas: F32, faces: F32) -> F32:
    """``background_restore``: re-render the background a little (smoothing + tone match)."""
    image = np.clip(canvas, 0, 255).astype(np.uint8)
    smooth = cv2.edgePreservingFilter(image, flags=cv2.RECURS_FILTER, sigma_s=30, sigma_r=0.2)
    background = 1.0 - np.clip(faces, 0, 1)
    out = _blend(canvas, smooth.astype(np.float32), background * 0.35)
    if faces.max() > 0.5:
        inside, outside = faces > 0.5, faces < 0.05
        lab = to_lab(out)
        if outside.any():
            delta = lab[inside].mean(axis=0) - lab[outside].mean(axis=0)
            lab[..., 1:] += delta[1:] * 0.1
            out = _blend(out, np.clip(from_lab(lab), 0, 255), background)
    return out


def finish(canvas: F32, faces: F32, opts: ComposeOptions) -> RGBImage:
    """The operations over the whole picture once every face is fused (``faces``: their masks),
    and the picture as ``uint8`` RGB."""
    if not opts.crop_face_preprocess:
        canvas = _region_ops(canvas, opts)
    if opts.background_restore:
        canvas = _restore_background(canvas, faces)
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    if opts.style_name == "Anime":
        image = np.asarray(cv2.stylization(image, sigma_s=60, sigma_r=0.45), np.uint8)
    return np.ascontiguousarray(image, np.uint8)


def _pair(
    faces: Sequence[Face], models: Sequence[FaceModel], group: bool
) -> list[tuple[Face, FaceModel]]:
    """Which template face each model goes onto; raises the documented create errors."""
    if not models:
        raise ApiError.create(E462_INVALID_INPUT)
    if not group:
        if not faces:
            raise ApiError.create(E462_NO_FACE)
        largest = max(faces, key=lambda f: f.box[2] * f.box[3])
        return [(largest, models[0])]
    if len(faces) != len(models):
        raise ApiError.create(E469_FACE_COUNT)
    return list(zip(faces, models, strict=True))  # both left to right


def compose(
    engine: FaceEngine,
    template: RGBImage,
    models: Sequence[FaceModel],
    options: ComposeOptions,
    *,
    group: bool | None = None,
) -> RGBImage:
    """Put the users' faces into the template; the result has the template's size.

    Solo (one model, ``group`` false): the template's largest face is replaced (the main subject;
    other faces are left alone); no face is the documented 462 ``E462_NO_FACE``. Group (``group``
    true; by default when there are several models, pass ``group=True`` for a ``model_ids`` call
    with a single id): the template must have exactly as many faces as models, else the
    documented 469 ``E469_FACE_COUNT``; faces and models are paired left to right, as the cloud
    documents. The create errors are raised as :class:`~._errors.ApiError`.
    """
    if len(models) > 1 and group is False:
        raise ValueError("several models need group mode")
    faces = engine.detect(template, with_descriptors=False)
    pairs = _pair(faces, models, len(models) > 1 if group is None else group)
    original = template.astype(np.float32)
    canvas = original.copy()
    masks = np.zeros(template.shape[:2], np.float32)
    for face, model in pairs:
        mask = fuse(canvas, original, model, face.landmarks, options, options.identity)
        masks = np.maximum(masks, mask)
    return finish(canvas, masks, options)
