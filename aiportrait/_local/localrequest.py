"""Batch items with local photos: :class:`LocalRequest`, resolved per item right before its call.

A request value (:mod:`aiportrait._requests`) holds URLs only. A :class:`LocalRequest` is the
same call with local inputs (``os.PathLike`` files or image ``bytes``) where the request takes
a photo or template URL; ``Session.train_many`` / ``create_many`` take it as an item. Built
with the same arguments as the Session's methods (``LocalRequest.train(paths, sdxl=True)``),
everything but the photos is validated at once. Per item, the batch runner:

1. reads every local input (:meth:`LocalRequest.read`; a bad one is a
   :class:`~aiportrait.errors.LocalPhotoError` failing that item only), and binds the item in
   the journal to a fingerprint over the *files' content* (SHA-256) and the rest of the request,
   never over URLs: a URL presigned again after it expired leaves the item the same item;
2. looks the item up in the journal (a finished or acknowledged item resumes, nothing uploaded);
3. only when the charged call is to be made: checks the photos on this machine (training,
   unless ``force``), cleans them of metadata, uploads them (:meth:`LocalRequest.resolve`) and
   sends the request with their URLs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs

from .._requests import (
    AnyCreateRequest,
    CreateRequest,
    GroupCreateRequest,
    PromptCreateRequest,
    ReferenceCreateRequest,
    TrainRequest,
)
from ..config import CreateConfig
from ..errors import InvalidArgument
from .inputs import UploadFunc, _needs_uploader, is_local, upload_photos
from .photos import photo_name, read_photo

__all__ = ["LocalRequest", "ReadInputs", "remembering"]

_PLACEHOLDER = "https://local.invalid/sha256/{}"
"""Stands for a local input in the request the fingerprint is taken over (never sent)."""

_IMAGE_FIELDS: Mapping[type, tuple[str, ...]] = {
    TrainRequest: ("images",),
    CreateRequest: ("template",),
    GroupCreateRequest: ("template",),
    ReferenceCreateRequest: ("reference", "template"),
    PromptCreateRequest: ("template", "reference"),
}


def _as_dict(fields: Mapping[str, Any]) -> dict[str, Any]:
    return dict(fields)


def _frozen_input(value: Any) -> Any:
    return bytes(value) if isinstance(value, (bytearray, memoryview)) else value


@attrs.frozen
class ReadInputs:
    """The local inputs of one item, read: per input its bytes, media type, name and SHA-256."""

    photos: Mapping[tuple[str, int], tuple[bytes, str, str, str]] = attrs.field(repr=False)
    placeholder: Any
    """The request with each local input as a placeholder URL naming its SHA-256."""


@attrs.frozen(repr=False)
class LocalRequest:
    """A batch item with local photos: the request it becomes once its photos are uploaded.

    Build it with the classmethod named like the Session method it stands for, taking the
    same arguments (a URL ``str``, a local file ``os.PathLike`` or image ``bytes`` wherever
    that method takes an image): :meth:`train`, :meth:`create`, :meth:`create_group`,
    :meth:`create_from_reference`, :meth:`create_from_prompt`. Nothing is read when it is
    built; everything else is validated then (an :class:`~aiportrait.errors.InvalidArgument`
    names what is wrong).

    Attributes:
        request_type: the request it becomes (:class:`TrainRequest`, :class:`CreateRequest`...).
        fields: its arguments, with the local inputs as given.
        force: (trainings) train on photos that fail the check made on this machine.
    """

    request_type: type[Any]
    fields: Mapping[str, Any] = attrs.field(converter=_as_dict)
    force: bool = False

    kind: ClassVar[str] = "local"

    def __attrs_post_init__(self) -> None:
        if self.request_type not in _IMAGE_FIELDS:
            raise InvalidArgument(f"LocalRequest of {self.request_type.__name__} is not supported")
        fields: dict[str, Any] = dict(self.fields)
        for name in _IMAGE_FIELDS[self.request_type]:
            value = fields.get(name)
            if name == "images":
                if isinstance(value, (str, bytes, os.PathLike)) or value is None:
                    raise InvalidArgument("images must be a list of photos, not a single one")
                fields[name] = tuple(_frozen_input(v) for v in value)
            elif value is not None:
                fields[name] = _frozen_input(value)
        object.__setattr__(self, "fields", fields)
        self._build({})  # validates everything but the photos, now

    # -- the constructors, one per Session method ---------------------------------------------

    @classmethod
    def train(
        cls,
        images: Sequence[Any],
        *,
        sdxl: bool = False,
        scene_lora: bool = False,
        scene_prompts: Sequence[str] | None = None,
        force: bool = False,
    ) -> LocalRequest:
        """A training, as :meth:`Session.train` takes it."""
        fields = {
            "images": images,
            "sdxl": sdxl,
            "scene_lora": scene_lora,
            "scene_prompts": scene_prompts,
        }
        return cls(TrainRequest, fields, force=force)

    @classmethod
    def create(
        cls,
        model_id: str,
        template: Any,
        *,
        sdxl: bool = False,
        config: CreateConfig | Mapping[str, Any] | None = None,
    ) -> LocalRequest:
        """A solo portrait, as :meth:`Session.create` takes it."""
        fields = {"model_id": model_id, "template": template, "sdxl": sdxl, "config": config}
        return cls(CreateRequest, fields)

    @classmethod
    def create_group(
        cls,
        model_ids: Sequence[str],
        template: Any,
        *,
        sdxl: bool = False,
        config: CreateConfig | Mapping[str, Any] | None = None,
    ) -> LocalRequest:
        """A group portrait, as :meth:`Session.create_group` takes it."""
        fields = {"model_ids": model_ids, "template": template, "sdxl": sdxl, "config": config}
        return cls(GroupCreateRequest, fields)

    @classmethod
    def create_from_reference(
        cls,
        reference: Any,
        template: Any,
        *,
        ipa_weight: float | None = None,
        sdxl: bool = False,
        config: CreateConfig | Mapping[str, Any] | None = None,
    ) -> LocalRequest:
        """A portrait from a reference photo, as :meth:`Session.create_from_reference`."""
        fields = {
            "reference": reference,
            "template": template,
            "ipa_weight": ipa_weight,
            "sdxl": sdxl,
            "config": config,
        }
        return cls(ReferenceCreateRequest, fields)

    @classmethod
    def create_from_prompt(
        cls,
        prompt: str,
        *,
        model_id: str | None = None,
        template: Any = None,
        reference: Any = None,
        scene_id: str | None = None,
        sdxl: bool = False,
        config: CreateConfig | Mapping[str, Any] | None = None,
    ) -> LocalRequest:
        """A portrait from a prompt, as :meth:`Session.create_from_prompt` takes it."""
        fields = {
            "prompt": prompt,
            "model_id": model_id,
            "template": template,
            "reference": reference,
            "scene_id": scene_id,
            "sdxl": sdxl,
            "config": config,
        }
        return cls(PromptCreateRequest, fields)

    # -- what the batch runner does with it ------------------------------------------------------

    @property
    def is_training(self) -> bool:
        """Whether it becomes a :class:`TrainRequest`."""
        return self.request_type is TrainRequest

    @property
    def photo_count(self) -> int:
        """How many photos a training has (0 for a creation)."""
        return len(self.fields["images"]) if self.is_training else 0

    def _locals(self) -> list[tuple[tuple[str, int], Any]]:
        """Every local input with its place: ``(field, index)`` (index 0 for one image)."""
        out: list[tuple[tuple[str, int], Any]] = []
        for name in _IMAGE_FIELDS[self.request_type]:
            value: Any = self.fields.get(name)
            if name == "images":
                out.extend(((name, i), v) for i, v in enumerate(value) if is_local(v))
            elif is_local(value):
                out.append(((name, 0), value))
        return out

    def _build(self, urls: Mapping[tuple[str, int], str]) -> Any:
        """The request with each local input replaced by ``urls[place]`` (a placeholder
        when absent)."""
        fields = dict(self.fields)
        for name in _IMAGE_FIELDS[self.request_type]:
            value: Any = fields.get(name)
            if name == "images":
                fields[name] = [
                    urls.get((name, i), _PLACEHOLDER.format(i)) if is_local(v) else v
                    for i, v in enumerate(value)
                ]
            elif is_local(value):
                fields[name] = urls.get((name, 0), _PLACEHOLDER.format(name))
        return self.request_type(**fields)

    def read(self) -> ReadInputs:
        """Read every local input (blocking; :class:`LocalPhotoError` for a bad one)."""
        photos = {}
        for place, value in self._locals():
            name = photo_name(value, place[1]) if not isinstance(value, bytes) else _named(place)
            data, content_type = read_photo(value, name)
            photos[place] = (data, content_type, name, hashlib.sha256(data).hexdigest())
        hashes = {place: _PLACEHOLDER.format(p[3]) for place, p in photos.items()}
        return ReadInputs(photos, self._build(hashes))

    async def resolve(
        self, upload: UploadFunc | None, read: ReadInputs
    ) -> TrainRequest | AnyCreateRequest:
        """Check (training, unless ``force``), clean and upload the photos ``read``; the request
        with their URLs."""
        if not read.photos:
            return read.placeholder  # type: ignore[no-any-return]
        if upload is None:
            first = next(iter(read.photos.values()))[2]
            raise _needs_uploader(self.request_type.__name__, first)
        photos = {place: (data, kind, name) for place, (data, kind, name, _) in read.photos.items()}
        urls = await upload_photos(upload, photos, check=self.is_training and not self.force)
        return self._build(urls)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        shown = {
            k: v
            for k, v in self.fields.items()
            if v is not None and v is not False and k not in _IMAGE_FIELDS[self.request_type]
        }
        count = len(self._locals())
        extra = "".join(f" {k}={v!r}" for k, v in shown.items())
        return f"<LocalRequest {self.request_type.__name__} local_inputs={count}{extra}>"


def remembering(upload: UploadFunc | None, memo: Any) -> UploadFunc | None:
    """``upload``, remembering uploads in ``memo`` (a batch's journal) when its uploader can.

    An uploader can when it has a ``remembering(memo)`` method returning an upload function
    (:class:`~aiportrait.uploads.OSSUploader` has); ``upload`` is its bound ``upload`` method.
    Any other uploader is used as it is.
    """
    owner = getattr(upload, "__self__", None)
    method = getattr(owner, "remembering", None)
    if upload is None or not callable(method):
        return upload
    return method(memo)  # type: ignore[no-any-return]


def _named(place: tuple[str, int]) -> str:
    name, index = place
    return f"{name} bytes #{index + 1}" if name == "images" else f"{name} (bytes)"
