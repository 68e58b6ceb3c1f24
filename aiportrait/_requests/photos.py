"""The calls on a person's photos: the check (free) and the training (charged)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import attrs

from .. import _args
from .._wire.codec import decode_check, decode_train
from .._wire.transport import Answer
from ..errors import InvalidArgument
from ..models import CheckReport, TrainJob
from .base import CHECK_PATH, TRAIN_PATH, CallKind, Request, image_repr
from .images import ImageInput, image_list

__all__ = ["CheckRequest", "TrainRequest"]


def _images(values: Iterable[ImageInput]) -> tuple[ImageInput, ...]:
    return image_list("images", values)


def _optional_strings(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else _args.string_tuple(value)


@attrs.frozen
class CheckRequest(Request):
    """Check photos before training (:meth:`Session.check_images`); free.

    Attributes:
        images: the photos: URLs, local files (``os.PathLike``) or image bytes (uploaded
            when the request is sent).
    """

    images: tuple[ImageInput, ...] = attrs.field(converter=_images, repr=image_repr())

    kind: ClassVar[CallKind] = "read"
    type_name: ClassVar[str] = "check"
    image_fields: ClassVar[tuple[str, ...]] = ("images",)

    def __attrs_post_init__(self) -> None:
        images = self._sent_list("images", self.images)
        self._set_body({"action": "AIGCImageCheck", "images": images})

    @property
    def path(self) -> str:
        """The resource path."""
        return CHECK_PATH

    def _decode(self, answer: Answer) -> CheckReport:
        """Read the service's answer."""
        return decode_check(answer.data, answer.request_id, self.images)


@attrs.frozen
class TrainRequest(Request):
    """A training (:meth:`Session.train`); charged.

    Attributes:
        images: the photos: URLs, local files (``os.PathLike``) or image bytes (the
            documentation asks for 5 to 20 photos of one person).
        sdxl: train an SDXL model.
        scene_lora: train a scene LoRA (SDXL only).
        scene_prompts: one caption per photo, required with ``scene_lora``.
        force: train on local photos that fail the check made on this machine before they
            are uploaded (without it, such a request raises
            :class:`~aiportrait.errors.PreflightFailed` when sent). Not sent to the service.
    """

    images: tuple[ImageInput, ...] = attrs.field(converter=_images, repr=image_repr())
    sdxl: bool = False
    scene_lora: bool = False
    scene_prompts: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_strings)
    force: bool = False

    kind: ClassVar[CallKind] = "train"
    type_name: ClassVar[str] = "train"
    image_fields: ClassVar[tuple[str, ...]] = ("images",)

    def __attrs_post_init__(self) -> None:
        configure: dict[str, Any] = {}
        if self.scene_lora:
            if not self.sdxl:
                raise InvalidArgument("scene_lora=True needs sdxl=True: scene LoRAs are SDXL only")
            if self.scene_prompts is None:
                raise InvalidArgument("scene_lora=True needs scene_prompts, one per image")
            configure["train_scene_lora_bool"] = True
        if self.scene_prompts is not None:
            if not self.scene_lora:
                raise InvalidArgument("scene_prompts are only used with scene_lora=True")
            prompts = [
                _args.text(f"scene_prompts[{i}]", p) for i, p in enumerate(self.scene_prompts)
            ]
            if len(prompts) != len(self.images):
                raise InvalidArgument(
                    f"scene_prompts has {len(prompts)} prompts for {len(self.images)} images: "
                    "give exactly one prompt per image"
                )
            configure["scene_lora_prompts"] = prompts
        images = self._sent_list("images", self.images)
        body: dict[str, Any] = {"action": "AIGCImageTrain", "images": images}
        if self.sdxl:
            body["model_name"] = "train_xl"
        if configure:
            body["configure"] = configure
        self._set_body(body)

    @property
    def path(self) -> str:
        """The resource path."""
        return TRAIN_PATH

    def _decode(self, answer: Answer) -> TrainJob:
        """Read the service's answer: the job handle."""
        return decode_train(answer.data)
