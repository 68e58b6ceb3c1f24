"""What crosses Temporal's wire: the data converter for the layer's values (:mod:`._values`).

Requests travel as their own ``to_dict`` form (:func:`aiportrait.request_from_dict` reads them
back, validated as when built); models and the values go through cattrs. Each payload
names its type (metadata ``type``), so a value comes back as the class it left as, whatever the
receiving side's annotations say. Errors travel as :class:`~._values.ErrorInfo` (the class
name, the message and the attributes), so a :class:`~aiportrait.errors.QuotaExceeded` raised in
an activity on one machine is a ``QuotaExceeded`` again where the workflow's result is read.

No usable presigned URL crosses: :func:`to_data` cuts each before its query
(:mod:`._unsigned`); a worker presigns an uploaded photo again before the call.
"""

from __future__ import annotations

import json
from typing import Any

import cattrs
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
)

from .._jobs.schedule import PollPolicy
from .._requests import _TYPES, request_from_dict
from ..models import CheckReport, ImageCheck, Job, TrainJob, TrainResult
from ._unsigned import RequestData, unsigned_data
from ._values import (
    BatchInput,
    BatchItem,
    BatchProgress,
    BatchSummary,
    CreateInput,
    ErrorInfo,
    ItemPage,
    OutcomePage,
    OutcomeRecord,
    PortraitRef,
    Timeouts,
    TrainInput,
    TrainProgress,
)

__all__ = ["data_converter", "encoded_size", "from_data", "to_data"]

_REQUESTS: tuple[type[Any], ...] = tuple(_TYPES.values())  # every request class, by type name


_VALUES: tuple[type[Any], ...] = (
    Timeouts,
    ErrorInfo,
    PortraitRef,
    CreateInput,
    TrainInput,
    TrainProgress,
    BatchItem,
    OutcomeRecord,
    ItemPage,
    OutcomePage,
    BatchInput,
    BatchProgress,
    BatchSummary,
    PollPolicy,
    CheckReport,
    ImageCheck,
    Job,
    TrainJob,
    TrainResult,
)


def _is_request_type(cls: Any) -> bool:
    """A request class, or a union of request classes."""
    members = getattr(cls, "__args__", None) if getattr(cls, "__origin__", None) else None
    if members is None and type(cls).__name__ == "UnionType":
        members = cls.__args__
    if members is not None:
        return all(m in _REQUESTS for m in members)
    return cls in _REQUESTS


def _build() -> cattrs.Converter:
    conv = cattrs.Converter()
    for cls in _REQUESTS:
        conv.register_unstructure_hook(cls, lambda r: RequestData(r.to_dict()))
    conv.register_structure_hook_func(_is_request_type, lambda d, _t: request_from_dict(d))
    return conv


_CONVERTER = _build()
_BY_NAME: dict[str, type[Any]] = {c.__name__: c for c in (*_VALUES, *_REQUESTS)}
_BY_OLD_NAME: dict[str, type[Any]] = {"ItemOutcome": OutcomeRecord}
"""Payloads written under a type's earlier name (workflow histories, queries) still read."""


def to_data(value: Any) -> Any:
    """``value`` (one of the values above, a request or a model) as JSON data, with no usable
    presigned URL in it (:func:`~._unsigned.unsigned_data`)."""
    return unsigned_data(_CONVERTER.unstructure(value))


def from_data(data: Any, cls: type[Any]) -> Any:
    """The ``cls`` that :func:`to_data` gave ``data`` for."""
    return _CONVERTER.structure(data, cls)


class _AIPortraitJSON(EncodingPayloadConverter):
    """``json/aiportrait``: the library's values, tagged with their type."""

    @property
    def encoding(self) -> str:
        return "json/aiportrait"

    def to_payload(self, value: Any) -> Payload | None:
        cls = type(value)
        if _BY_NAME.get(cls.__name__) is not cls:
            return None
        return _payload(value, to_data(value))

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        name = payload.metadata.get("type", b"").decode()
        cls = _BY_NAME.get(name) or _BY_OLD_NAME.get(name)
        if cls is None:
            raise RuntimeError(f"unknown aiportrait payload type {name!r}")
        return from_data(json.loads(payload.data), cls)


class PayloadConverter(CompositePayloadConverter):
    """Temporal's default payload converter with the library's values in front of plain JSON."""

    def __init__(self) -> None:
        defaults = DefaultPayloadConverter.default_encoding_payload_converters
        # Plain JSON must stay last: it raises on what it cannot encode.
        super().__init__(*defaults[:-1], _AIPortraitJSON(), defaults[-1])


data_converter = DataConverter(payload_converter_class=PayloadConverter)
"""The data converter to give ``Client.connect`` (workers and starters alike)."""


def _payload(value: Any, data: Any) -> Payload:
    return Payload(
        metadata={"encoding": b"json/aiportrait", "type": type(value).__name__.encode()},
        data=json.dumps(data, separators=(",", ":"), allow_nan=False).encode(),
    )


def encoded_size(value: Any, *, signed: bool = False) -> int:
    """The bytes ``value`` takes as Temporal carries it: its payload, as :data:`data_converter`
    encodes it (deterministic: workflow code may measure with it). ``signed``: as it was
    measured before presigned URLs lost their query here (a run begun then replays alike)."""
    if signed:
        return _payload(value, _CONVERTER.unstructure(value)).ByteSize()
    (payload,) = data_converter.payload_converter.to_payloads([value])
    return payload.ByteSize()
