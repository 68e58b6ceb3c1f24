"""Requests as data: one immutable, validated value per AI Portrait call.

A request knows its kind (``read``, ``train`` or ``create``: what it costs and how it may be
retried), its HTTP method and path, the JSON payload it sends (built and checked once, when the
request is built) and how to read the answer. It knows nothing of a Session: ``await
session.send(request)`` runs it, and the endpoint methods (``session.create(...)``) only build a
request and send it. Requests go to JSON and back without loss (:meth:`to_dict`,
:func:`request_from_dict`), so they can be stored in a journal or shipped to another machine.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Final, Literal, TypeAlias

import attrs

from . import _args
from ._wire.codec import decode_batch, decode_check, decode_job, decode_portrait, decode_train
from ._wire.transport import Answer
from .config import CreateConfig
from .errors import InvalidArgument
from .models import CheckReport, Job, Portrait, TrainJob

__all__ = [
    "AnyCreateRequest",
    "AnyRequest",
    "BatchQuery",
    "CheckRequest",
    "CreateRequest",
    "GroupCreateRequest",
    "JobQuery",
    "PromptCreateRequest",
    "ReferenceCreateRequest",
    "TrainRequest",
    "request_from_dict",
]

log = logging.getLogger("aiportrait")

CallKind = Literal["read", "train", "create"]

CHECK_PATH: Final = "/api/v1/aigc_images/check"
TRAIN_PATH: Final = "/api/v1/aigc_images/train"
CREATE_PATH: Final = "/api/v1/aigc_images/create"
JOB_PATH: Final = "/api/v1/async_jobs/{}"
BATCH_PATH: Final = "/api/v1/batch_jobs/{}"
T2I_TEMPLATE: Final = "t2i_generate"

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


def _urls(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(_args.url_list("images", values))


def _template(template: str) -> str:
    if template == T2I_TEMPLATE:
        return template
    return _args.url("template", template)


def _optional_strings(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else _args.string_tuple(value)


def _config(
    value: CreateConfig | Mapping[str, Any] | None,
) -> CreateConfig | Mapping[str, Any] | None:
    """A CreateConfig as it is; a plain mapping as a read-only copy (sent unchanged)."""
    if value is None or isinstance(value, CreateConfig):
        return value
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return MappingProxyType(dict(value))
    raise InvalidArgument(f"config must be a CreateConfig or a mapping, not {type(value).__name__}")


def _configure(config: CreateConfig | Mapping[str, Any] | None, *, sdxl: bool) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, CreateConfig):
        config.model_mismatch(sdxl=sdxl)  # warns ConfigWarning: sent unchanged all the same
        return config.to_configure()
    return dict(config)


def _config_dict(config: CreateConfig | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if config is None:
        return None
    if isinstance(config, CreateConfig):
        return {"keys": config.to_configure()}
    return {"configure": dict(config)}


def _config_from(data: Any) -> CreateConfig | Mapping[str, Any] | None:
    if data is None:
        return None
    if not isinstance(data, Mapping) or len(data) != 1:
        raise InvalidArgument(f"config must be {{'keys': ...}} or {{'configure': ...}}: {data!r}")
    if "configure" in data:
        return _config(data["configure"])
    keys = dict(data["keys"])
    extra = {k: keys.pop(k) for k in list(keys) if k not in _DOCUMENTED}
    return CreateConfig(**keys, extra=extra or None)


_DOCUMENTED: Final = frozenset(a.name for a in attrs.fields(CreateConfig) if a.name != "extra")


def _payload_field() -> Any:
    return attrs.field(init=False, eq=False, repr=False, hash=False)


class _Request:
    """What every request shares: the wire facts and the JSON round trip."""

    kind: ClassVar[CallKind]
    """``read`` (free, retried freely), ``train`` or ``create`` (charged: retried only when
    it provably did not run)."""
    method: ClassVar[str] = "POST"
    accept: ClassVar[str] = "application/json"
    lift: ClassVar[str | None] = None
    """A large string field of the answer to cut out before JSON parsing (the image)."""
    type_name: ClassVar[str]
    """The ``type`` of :meth:`to_dict`."""

    @property
    def path(self) -> str:
        """The resource path (also what is signed)."""
        raise NotImplementedError

    def payload(self) -> Mapping[str, Any] | None:
        """The JSON body to send (``None``: no body)."""
        return None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data with a ``type`` key; :func:`request_from_dict` reads it back."""
        out: dict[str, Any] = {"type": self.type_name}
        for a in attrs.fields(type(self)):  # type: ignore[arg-type]
            if not a.init:
                continue
            value = getattr(self, a.name)
            if a.name == "config":
                value = _config_dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[a.name] = value
        return out


@attrs.frozen
class CheckRequest(_Request):
    """Check photos before training (:meth:`Session.check_images`); free."""

    images: tuple[str, ...] = attrs.field(converter=_urls)

    kind: ClassVar[CallKind] = "read"
    type_name: ClassVar[str] = "check"

    @property
    def path(self) -> str:
        """The resource path."""
        return CHECK_PATH

    def payload(self) -> Mapping[str, Any]:
        """The JSON body."""
        return {"action": "AIGCImageCheck", "images": list(self.images)}

    def decode(self, answer: Answer) -> CheckReport:
        """Read the service's answer."""
        return decode_check(answer.data, answer.request_id)


@attrs.frozen
class TrainRequest(_Request):
    """A training (:meth:`Session.train`); charged.

    Attributes:
        images: photo URLs (the documentation asks for 5 to 20 photos of one person).
        sdxl: train an SDXL model.
        scene_lora: train a scene LoRA (SDXL only).
        scene_prompts: one caption per photo, required with ``scene_lora``.
    """

    images: tuple[str, ...] = attrs.field(converter=_urls)
    sdxl: bool = False
    scene_lora: bool = False
    scene_prompts: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_strings)
    _body: Mapping[str, Any] = _payload_field()

    kind: ClassVar[CallKind] = "train"
    type_name: ClassVar[str] = "train"

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
        body: dict[str, Any] = {"action": "AIGCImageTrain", "images": list(self.images)}
        if self.sdxl:
            body["model_name"] = "train_xl"
        if configure:
            body["configure"] = configure
        object.__setattr__(self, "_body", body)

    @property
    def path(self) -> str:
        """The resource path."""
        return TRAIN_PATH

    def payload(self) -> Mapping[str, Any]:
        """The JSON body."""
        return self._body

    def decode(self, answer: Answer) -> TrainJob:
        """Read the service's answer: the job handle."""
        return decode_train(answer.data)


class _Create(_Request):
    kind: ClassVar[CallKind] = "create"
    lift: ClassVar[str | None] = "image"
    _body: Mapping[str, Any]

    @property
    def path(self) -> str:
        """The resource path."""
        return CREATE_PATH

    def payload(self) -> Mapping[str, Any]:
        """The JSON body."""
        return self._body

    def decode(self, answer: Answer) -> Portrait:
        """Read the service's answer: the portrait."""
        return decode_portrait(answer.data, answer.request_id, answer.lifted, answer.image)

    def _build(
        self,
        model_id: str,
        model_ids: tuple[str, ...] | None,
        template: str,
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
        body["template_image"] = template
        if configure:
            body["configure"] = configure
        object.__setattr__(self, "_body", body)


def _model_id(value: str) -> str:
    return _args.text("model_id", value)


def _model_ids(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(_args.model_id_list("model_ids", values))


@attrs.frozen
class CreateRequest(_Create):
    """A solo portrait (:meth:`Session.create`); charged.

    Attributes:
        model_id: the ``model_id`` of a finished training.
        template: template image URL with one face (or ``"t2i_generate"`` with a prompt).
        sdxl: use the SDXL model.
        config: a :class:`CreateConfig`, or a plain mapping sent as is.
    """

    model_id: str = attrs.field(converter=_model_id)
    template: str = attrs.field(converter=_template)
    sdxl: bool = False
    config: CreateConfig | Mapping[str, Any] | None = attrs.field(default=None, converter=_config)
    _body: Mapping[str, Any] = _payload_field()

    type_name: ClassVar[str] = "create"

    def __attrs_post_init__(self) -> None:
        self._build(self.model_id, None, self.template, self.sdxl, self.config, _EMPTY)


@attrs.frozen
class GroupCreateRequest(_Create):
    """A group portrait (:meth:`Session.create_group`): model ids paired with template faces
    left to right; charged."""

    model_ids: tuple[str, ...] = attrs.field(converter=_model_ids)
    template: str = attrs.field(converter=_template)
    sdxl: bool = False
    config: CreateConfig | Mapping[str, Any] | None = attrs.field(default=None, converter=_config)
    _body: Mapping[str, Any] = _payload_field()

    type_name: ClassVar[str] = "group"

    def __attrs_post_init__(self) -> None:
        self._build("", self.model_ids, self.template, self.sdxl, self.config, _EMPTY)


def _reference_keys(reference: str, ipa_weight: float | None) -> dict[str, Any]:
    keys: dict[str, Any] = {
        "ipa_control_only": True,
        "ipa_image_path": _args.url("reference", reference),
    }
    if ipa_weight is not None:
        keys["ipa_weight"] = CreateConfig(ipa_weight=ipa_weight).ipa_weight
    return keys


@attrs.frozen
class ReferenceCreateRequest(_Create):
    """A portrait from one reference photo, no training (:meth:`Session.create_from_reference`);
    charged.

    Attributes:
        reference: URL of a photo of the person.
        template: template image URL.
        ipa_weight: IP-Adapter strength, 0.0 to 1.0 (service default 0.5).
    """

    reference: str
    template: str = attrs.field(converter=_template)
    ipa_weight: float | None = None
    sdxl: bool = False
    config: CreateConfig | Mapping[str, Any] | None = attrs.field(default=None, converter=_config)
    _body: Mapping[str, Any] = _payload_field()

    type_name: ClassVar[str] = "reference"

    def __attrs_post_init__(self) -> None:
        explicit = _reference_keys(self.reference, self.ipa_weight)
        self._build("", None, self.template, self.sdxl, self.config, explicit)


@attrs.frozen(kw_only=True)
class PromptCreateRequest(_Create):
    """A text-prompt portrait (:meth:`Session.create_from_prompt`); charged.

    The person is a trained ``model_id`` or a ``reference`` photo (exactly one of them).
    """

    prompt: str
    model_id: str | None = None
    template: str | None = None
    reference: str | None = None
    scene_id: str | None = None
    sdxl: bool = False
    config: CreateConfig | Mapping[str, Any] | None = attrs.field(default=None, converter=_config)
    _body: Mapping[str, Any] = _payload_field()

    type_name: ClassVar[str] = "prompt"

    def __attrs_post_init__(self) -> None:
        explicit: dict[str, Any] = {"t2i_prompt": _args.text("prompt", self.prompt)}
        if (self.model_id is None) == (self.reference is None):
            raise InvalidArgument("give exactly one of model_id (trained) or reference (photo)")
        if self.reference is not None:
            explicit.update(_reference_keys(self.reference, None))
        if self.scene_id is not None:
            explicit["scene_id"] = _args.text("scene_id", self.scene_id)
        mid = "" if self.model_id is None else _args.text("model_id", self.model_id)
        tpl = T2I_TEMPLATE if self.template is None else _template(self.template)
        self._build(mid, None, tpl, self.sdxl, self.config, explicit)


def _job_id(value: object) -> int:
    job = value.job_id if isinstance(value, TrainJob) else value
    if isinstance(job, bool) or not isinstance(job, int) or job < 0:
        raise InvalidArgument(f"job must be a TrainJob or a non-negative job id, not {value!r}")
    return job


@attrs.frozen
class JobQuery(_Request):
    """Query an asynchronous job once (``POST /api/v1/async_jobs/{id}``); free."""

    job_id: int = attrs.field(converter=_job_id)

    kind: ClassVar[CallKind] = "read"
    accept: ClassVar[str] = "text/plain"
    type_name: ClassVar[str] = "job"

    @property
    def path(self) -> str:
        """The resource path."""
        return JOB_PATH.format(self.job_id)

    def decode(self, answer: Answer) -> Job:
        """Read the service's answer."""
        return decode_job(answer.data, self.job_id, answer.request_id)


@attrs.frozen
class BatchQuery(_Request):
    """Query the jobs of a batch (``GET /api/v1/batch_jobs/{id}``); free."""

    batch_id: int = attrs.field(converter=_job_id)

    kind: ClassVar[CallKind] = "read"
    method: ClassVar[str] = "GET"
    accept: ClassVar[str] = "text/plain"
    type_name: ClassVar[str] = "batch"

    @property
    def path(self) -> str:
        """The resource path."""
        return BATCH_PATH.format(self.batch_id)

    def decode(self, answer: Answer) -> tuple[Job, ...]:
        """Read the service's answer."""
        return decode_batch(answer.data, answer.request_id)


AnyCreateRequest: TypeAlias = (
    CreateRequest | GroupCreateRequest | ReferenceCreateRequest | PromptCreateRequest
)
AnyRequest: TypeAlias = CheckRequest | TrainRequest | AnyCreateRequest | JobQuery | BatchQuery

_TYPES: Final[dict[str, type[Any]]] = {
    cls.type_name: cls
    for cls in (
        CheckRequest,
        TrainRequest,
        CreateRequest,
        GroupCreateRequest,
        ReferenceCreateRequest,
        PromptCreateRequest,
        JobQuery,
        BatchQuery,
    )
}


def request_from_dict(data: Mapping[str, Any]) -> AnyRequest:
    """The request that :meth:`to_dict` gave ``data`` for (validated as when built)."""
    if not isinstance(data, Mapping) or data.get("type") not in _TYPES:
        names = ", ".join(sorted(_TYPES))
        raise InvalidArgument(f"a request dict needs a 'type' of {names}: {data!r:.120}")
    cls = _TYPES[data["type"]]
    fields = {a.name: a for a in attrs.fields(cls) if a.init}
    unknown = set(data) - set(fields) - {"type"}
    if unknown:
        raise InvalidArgument(f"unknown fields for a {data['type']} request: {sorted(unknown)}")
    kwargs = {k: v for k, v in data.items() if k != "type"}
    if "config" in kwargs:
        kwargs["config"] = _config_from(kwargs["config"])
    for name in ("images", "model_ids", "scene_prompts"):
        if isinstance(kwargs.get(name), list):
            kwargs[name] = tuple(kwargs[name])
    try:
        request: AnyRequest = cls(**kwargs)
    except TypeError as exc:
        raise InvalidArgument(f"a {data['type']} request: {exc}") from None
    return request
