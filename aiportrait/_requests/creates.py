"""The portrait calls (charged): solo, group, from a reference photo, from a text prompt."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Final

import attrs

from .. import _args
from .._wire.codec import decode_portrait
from .._wire.transport import Answer
from ..config import CreateConfig
from ..errors import InvalidArgument
from ..models import Portrait
from .base import CREATE_PATH, CallKind, ReadOnlyMapping, Request, config_value, image_repr
from .images import T2I_TEMPLATE, ImageInput, image, template_input

__all__ = [
    "CreateRequest",
    "GroupCreateRequest",
    "PromptCreateRequest",
    "ReferenceCreateRequest",
]

_EMPTY: Final[Mapping[str, Any]] = ReadOnlyMapping({})


def _configure(config: CreateConfig | Mapping[str, Any] | None, *, sdxl: bool) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, CreateConfig):
        config.model_mismatch(sdxl=sdxl)  # warns ConfigWarning: sent unchanged all the same
        return config.to_configure()
    return dict(config)


def _reference(value: ImageInput) -> ImageInput:
    return image("reference", value)


def _optional_reference(value: ImageInput | None) -> ImageInput | None:
    return None if value is None else image("reference", value)


def _optional_template(value: ImageInput | None) -> ImageInput | None:
    return None if value is None else template_input(value)


def _model_id(value: str) -> str:
    return _args.text("model_id", value)


def _model_ids(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(_args.model_id_list("model_ids", values))


class _Create(Request):
    kind: ClassVar[CallKind] = "create"
    lift: ClassVar[str | None] = "image"
    image_fields: ClassVar[tuple[str, ...]] = ("template",)

    @property
    def path(self) -> str:
        """The resource path."""
        return CREATE_PATH

    def _decode(self, answer: Answer) -> Portrait:
        """Read the service's answer: the portrait."""
        return decode_portrait(answer.data, answer.request_id, answer.lifted, answer.image)

    def _reference_keys(self, reference: Any, ipa_weight: float | None) -> dict[str, Any]:
        keys: dict[str, Any] = {
            "ipa_control_only": True,
            "ipa_image_path": self._sent(reference, ("reference", 0)),
        }
        if ipa_weight is not None:
            keys["ipa_weight"] = CreateConfig(ipa_weight=ipa_weight).ipa_weight
        return keys

    def _build(
        self,
        model_id: str,
        model_ids: tuple[str, ...] | None,
        template: Any,
        sdxl: bool,
        config: CreateConfig | Mapping[str, Any] | None,
        explicit: Mapping[str, Any],
    ) -> None:
        configure = _args.merge_explicit(_configure(config, sdxl=sdxl), explicit)
        if configure.get("ipa_control_only") and not configure.get("ipa_image_path"):
            raise InvalidArgument("ipa_control_only=True needs ipa_image_path (a reference URL)")
        body: dict[str, Any] = {"action": "AIGCImageCreate", "model_id": model_id}
        if model_ids is not None:
            body["model_ids"] = list(model_ids)
        if sdxl:
            body["model_name"] = "create_xl"
        body["template_image"] = self._sent(template, ("template", 0))
        if configure:
            body["configure"] = configure
        self._set_body(body)


@attrs.frozen
class CreateRequest(_Create):
    """A solo portrait (:meth:`Session.create`); charged.

    Attributes:
        model_id: the ``model_id`` of a finished training.
        template: template image with one face: a URL, a local file or image bytes (or
            ``"t2i_generate"`` with a prompt).
        sdxl: use the SDXL model.
        config: a :class:`CreateConfig`, or a plain mapping sent as is.
    """

    model_id: str = attrs.field(converter=_model_id)
    template: ImageInput = attrs.field(converter=template_input, repr=image_repr())
    sdxl: bool = False
    config: CreateConfig | Mapping[str, Any] | None = attrs.field(
        default=None, converter=config_value
    )

    type_name: ClassVar[str] = "create"

    def __attrs_post_init__(self) -> None:
        self._build(self.model_id, None, self.template, self.sdxl, self.config, _EMPTY)


@attrs.frozen
class GroupCreateRequest(_Create):
    """A group portrait (:meth:`Session.create_group`): model ids paired with template faces
    left to right; charged.

    Attributes:
        model_ids: one trained ``model_id`` per face of the template.
        template: template image: a URL, a local file or image bytes.
        sdxl: use the SDXL model.
        config: a :class:`CreateConfig`, or a plain mapping sent as is.
    """

    model_ids: tuple[str, ...] = attrs.field(converter=_model_ids)
    template: ImageInput = attrs.field(converter=template_input, repr=image_repr())
    sdxl: bool = False
    config: CreateConfig | Mapping[str, Any] | None = attrs.field(
        default=None, converter=config_value
    )

    type_name: ClassVar[str] = "group"

    def __attrs_post_init__(self) -> None:
        self._build("", self.model_ids, self.template, self.sdxl, self.config, _EMPTY)


@attrs.frozen
class ReferenceCreateRequest(_Create):
    """A portrait from one reference photo, no training (:meth:`Session.create_from_reference`);
    charged.

    Attributes:
        reference: a photo of the person: a URL, a local file or image bytes.
        template: template image: a URL, a local file or image bytes.
        ipa_weight: IP-Adapter strength, 0.0 to 1.0 (service default 0.5).
        sdxl: use the SDXL model.
        config: a :class:`CreateConfig`, or a plain mapping sent as is.
    """

    reference: ImageInput = attrs.field(converter=_reference, repr=image_repr())
    template: ImageInput = attrs.field(converter=template_input, repr=image_repr())
    ipa_weight: float | None = None
    sdxl: bool = False
    config: CreateConfig | Mapping[str, Any] | None = attrs.field(
        default=None, converter=config_value
    )

    type_name: ClassVar[str] = "reference"
    image_fields: ClassVar[tuple[str, ...]] = ("reference", "template")

    def __attrs_post_init__(self) -> None:
        explicit = self._reference_keys(self.reference, self.ipa_weight)
        self._build("", None, self.template, self.sdxl, self.config, explicit)


@attrs.frozen(kw_only=True)
class PromptCreateRequest(_Create):
    """A text-prompt portrait (:meth:`Session.create_from_prompt`); charged.

    The person is a trained ``model_id`` or a ``reference`` photo (exactly one of them).

    Attributes:
        prompt: the text prompt.
        model_id: a trained model id.
        template: a template image (URL, local file or bytes); default ``"t2i_generate"``
            (generate the scene).
        reference: a photo of the person instead of a trained model (no training).
        scene_id: a scene LoRA id from an SDXL scene training.
        sdxl: use the SDXL model.
        config: a :class:`CreateConfig`, or a plain mapping sent as is.
    """

    prompt: str
    model_id: str | None = None
    template: ImageInput | None = attrs.field(
        default=None, converter=_optional_template, repr=image_repr()
    )
    reference: ImageInput | None = attrs.field(
        default=None, converter=_optional_reference, repr=image_repr()
    )
    scene_id: str | None = None
    sdxl: bool = False
    config: CreateConfig | Mapping[str, Any] | None = attrs.field(
        default=None, converter=config_value
    )

    type_name: ClassVar[str] = "prompt"
    image_fields: ClassVar[tuple[str, ...]] = ("template", "reference")

    def __attrs_post_init__(self) -> None:
        explicit: dict[str, Any] = {"t2i_prompt": _args.text("prompt", self.prompt)}
        if (self.model_id is None) == (self.reference is None):
            raise InvalidArgument("give exactly one of model_id (trained) or reference (photo)")
        if self.reference is not None:
            explicit.update(self._reference_keys(self.reference, None))
        if self.scene_id is not None:
            explicit["scene_id"] = _args.text("scene_id", self.scene_id)
        mid = "" if self.model_id is None else _args.text("model_id", self.model_id)
        tpl = T2I_TEMPLATE if self.template is None else self.template
        self._build(mid, None, tpl, self.sdxl, self.config, explicit)
