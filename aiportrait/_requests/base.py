"""What every request shares: its wire facts, its local inputs and its JSON round trip."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar

import attrs

from .._states import CallKind
from ..errors import InvalidArgument
from .images import Place, all_strings, is_local, placeholder, shown

if TYPE_CHECKING:
    from ..config import CreateConfig

__all__ = [
    "BATCH_PATH",
    "CHECK_PATH",
    "CREATE_PATH",
    "JOB_PATH",
    "TRAIN_PATH",
    "CallKind",
    "ReadOnlyMapping",
    "Request",
    "config_dict",
    "config_from",
    "config_value",
    "image_repr",
]


CHECK_PATH: Final = "/api/v1/aigc_images/check"
TRAIN_PATH: Final = "/api/v1/aigc_images/train"
CREATE_PATH: Final = "/api/v1/aigc_images/create"
JOB_PATH: Final = "/api/v1/async_jobs/{}"
BATCH_PATH: Final = "/api/v1/batch_jobs/{}"

R = TypeVar("R", bound="Request")


def image_repr() -> Any:
    """An image field's repr: bytes by their size only."""
    return shown


@attrs.frozen
class Request:
    """What every request shares: the wire facts, local inputs and the JSON round trip."""

    kind: ClassVar[CallKind]
    """``read`` (free, retried freely), ``train`` or ``create`` (charged: retried only when
    it provably did not run)."""
    method: ClassVar[str] = "POST"
    accept: ClassVar[str] = "application/json"
    lift: ClassVar[str | None] = None
    """A large string field of the answer to cut out before JSON parsing (the image)."""
    type_name: ClassVar[str]
    """The ``type`` of :meth:`to_dict`."""
    image_fields: ClassVar[tuple[str, ...]] = ()
    """The fields that take an image: a URL, a local file or bytes."""
    local: bool = attrs.field(init=False, default=False, eq=False, repr=False)
    """True while an image field holds a local input (a file or bytes): sending the request
    uploads it first (see the Session's ``uploader``)."""
    _body: Mapping[str, Any] | None = attrs.field(init=False, default=None, eq=False, repr=False)

    @property
    def path(self) -> str:
        """The resource path (also what is signed)."""
        raise NotImplementedError

    def payload(self) -> Mapping[str, Any] | None:
        """The JSON body to send (``None``: no body)."""
        if self.local:
            raise self._unresolved("payload()")
        return self._body

    def _set_body(self, body: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_body", body)

    def _sent(self, value: Any, place: Place) -> Any:
        """An image as the body holds it: the URL, or a placeholder for a local input."""
        if value is None or isinstance(value, str):
            return value
        object.__setattr__(self, "local", True)
        return placeholder(place)

    def _sent_list(self, name: str, values: tuple[Any, ...]) -> list[Any]:
        """A list of images as the body holds it (see :meth:`_sent`)."""
        if all_strings(values):  # the usual case: URLs only
            return list(values)
        return [self._sent(v, (name, i)) for i, v in enumerate(values)]

    def _unresolved(self, what: str) -> InvalidArgument:
        """Why ``what`` cannot be done while the request holds local inputs."""
        return InvalidArgument(
            f"this {self.type_name} request holds local inputs (files or bytes): {what} "
            "needs their URLs. Session.send uploads them with its uploader and sends the "
            "request with their URLs; or give URLs"
        )

    def local_inputs(self) -> dict[Place, Any]:
        """Every local input by its place: ``(field, index)``, index 0 for a single image."""
        out: dict[Place, Any] = {}
        for name in self.image_fields:
            value = getattr(self, name)
            if type(value) is tuple:
                out.update(((name, i), v) for i, v in enumerate(value) if is_local(v))
            elif is_local(value):
                out[(name, 0)] = value
        return out

    def with_urls(self: R, urls: Mapping[Place, str]) -> R:
        """This request with the local input at each place of ``urls`` replaced by its URL."""
        changes: dict[str, Any] = {}
        for name in self.image_fields:
            value = getattr(self, name)
            if type(value) is tuple:
                changes[name] = tuple(urls.get((name, i), v) for i, v in enumerate(value))
            elif (name, 0) in urls:
                changes[name] = urls[(name, 0)]
        return attrs.evolve(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data with a ``type`` key; :func:`request_from_dict` reads it back.

        A request with local inputs has none: upload them first (:meth:`Session.send` does).
        """
        if self.local:
            raise self._unresolved("to_dict()")
        out: dict[str, Any] = {"type": self.type_name}
        for a in attrs.fields(type(self)):
            if not a.init:
                continue
            value = getattr(self, a.name)
            if a.name == "config":
                value = config_dict(value)
            elif a.name == "force":
                if not value:
                    continue  # not sent; written only when set
            elif isinstance(value, tuple):
                value = list(value)
            out[a.name] = value
        return out


class ReadOnlyMapping(Mapping[str, Any]):
    """A read-only copy of a mapping (a plain ``config``) that pickles, as
    ``types.MappingProxyType`` does not: a request that holds one can be pickled (a
    :class:`~aiportrait.errors.SubmitOutcomeUnknown` carries its request)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(self._data)


def config_value(
    value: CreateConfig | Mapping[str, Any] | None,
) -> CreateConfig | Mapping[str, Any] | None:
    """A CreateConfig as it is; a plain mapping as a read-only copy (sent unchanged)."""
    from ..config import CreateConfig  # loaded with the create requests, not for every call

    if value is None or isinstance(value, CreateConfig):
        return value
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return ReadOnlyMapping(value)
    raise InvalidArgument(f"config must be a CreateConfig or a mapping, not {type(value).__name__}")


def config_dict(value: CreateConfig | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A config as :meth:`Request.to_dict` writes it."""
    from ..config import CreateConfig

    if value is None:
        return None
    if isinstance(value, CreateConfig):
        return {"keys": value.to_configure()}
    return {"configure": dict(value)}


def config_from(data: Any) -> CreateConfig | Mapping[str, Any] | None:
    """A config as :func:`config_dict` wrote it."""
    from ..config import DOCUMENTED_KEYS, CreateConfig

    if data is None:
        return None
    if not isinstance(data, Mapping) or len(data) != 1:
        raise InvalidArgument(f"config must be {{'keys': ...}} or {{'configure': ...}}: {data!r}")
    if "configure" in data:
        return config_value(data["configure"])
    keys = dict(data["keys"])
    extra = {k: keys.pop(k) for k in list(keys) if k not in DOCUMENTED_KEYS}
    return CreateConfig(**keys, extra=extra or None)
