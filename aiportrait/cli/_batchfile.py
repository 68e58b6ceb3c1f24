"""The batch file: CSV with a header row, or JSON Lines; one request per row (see docs/cli.md)."""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from .. import (
    AnyCreateRequest,
    CreateConfig,
    CreateRequest,
    GroupCreateRequest,
    PromptCreateRequest,
    ReferenceCreateRequest,
    TrainRequest,
)
from ..errors import AIPortraitWarning, InvalidArgument, PhotoCountWarning
from ._exit import UsageError

__all__ = ["Plan", "check_request", "config_from", "read_plan", "row_request"]

_CONFIG_KEYS: Final = frozenset(a.name for a in attrs.fields(CreateConfig) if a.name != "extra")


def config_from(values: Mapping[str, Any]) -> CreateConfig | None:
    """A :class:`CreateConfig` from a mapping: documented keys as attributes, others in extra."""
    if not values:
        return None
    known = {k: v for k, v in values.items() if k in _CONFIG_KEYS}
    extra = {k: v for k, v in values.items() if k not in _CONFIG_KEYS}
    return CreateConfig(**known, extra=extra or None)


def check_request(request: AnyCreateRequest | TrainRequest) -> None:
    """Warn now what the library would warn when the request is sent (nothing is sent here).

    A training outside the documented 5 to 20 photos (:class:`PhotoCountWarning`); config keys
    documented for the other model only (:class:`ConfigWarning`).
    """
    if isinstance(request, TrainRequest):
        PhotoCountWarning.check(len(request.images))
    elif isinstance(request.config, CreateConfig):
        request.config.model_mismatch(sdxl=request.sdxl)


_COLUMNS: Final = {
    "solo": ({"model_id", "template"}, {"sdxl", "config"}),
    "group": ({"model_ids", "template"}, {"sdxl", "config"}),
    "reference": ({"reference", "template"}, {"sdxl", "config"}),
    "prompt": ({"prompt"}, {"model_id", "reference", "template", "scene_id", "sdxl", "config"}),
    "train": ({"images"}, {"sdxl"}),
}
"""Per kind: the required fields and the optional ones (besides ``kind`` and ``key``)."""

_ALL_COLUMNS: Final = frozenset({"kind", "key"}).union(
    *(required | optional for required, optional in _COLUMNS.values())
)
_TRUE: Final = frozenset({"1", "true", "yes", "y", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "n", "off", ""})


@attrs.define
class Plan:
    """A batch file, parsed: trainings and creations by key."""

    trainings: dict[str, TrainRequest] = attrs.Factory(dict)
    creations: dict[str, AnyCreateRequest] = attrs.Factory(dict)

    def __len__(self) -> int:
        return len(self.trainings) + len(self.creations)


def _present(row: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that have a value (empty CSV cells and JSON nulls are absent)."""
    return {
        k: v for k, v in row.items() if v is not None and not (isinstance(v, str) and not v.strip())
    }


def _text(row: Mapping[str, Any], name: str) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise UsageError(f"{name}: expected a string, got {json.dumps(value)}")
    return str(value).strip()


def _strings(row: Mapping[str, Any], name: str) -> list[str]:
    value = row[name]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    if not isinstance(value, str):
        raise UsageError(f"{name}: expected a list of strings or a '|'-separated string")
    parts = value.split("|") if "|" in value else value.split()
    return [p.strip() for p in parts if p.strip()]


def _flag(row: Mapping[str, Any], name: str) -> bool:
    value = row.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise UsageError(f"{name}: expected true or false, got {value!r}")


def _config(row: Mapping[str, Any]) -> CreateConfig | None:
    value = row.get("config")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise UsageError(f"config: not JSON ({exc.msg})") from exc
    if value is not None and not isinstance(value, dict):
        raise UsageError("config: expected a JSON object")
    try:
        return config_from(value or {})
    except InvalidArgument as exc:
        raise UsageError(f"config: {exc}") from exc


def _check_fields(kind: str, row: Mapping[str, Any]) -> None:
    required, optional = _COLUMNS[kind]
    missing = sorted(required - row.keys())
    if missing:
        raise UsageError(f"kind {kind} needs {', '.join(missing)}")
    unused = sorted(row.keys() - required - optional - {"kind", "key"})
    if unused:
        raise UsageError(f"kind {kind} does not use {', '.join(unused)}")


def row_request(row: Mapping[str, Any]) -> AnyCreateRequest | TrainRequest:
    """The request one batch row describes (raises :class:`UsageError` saying what is wrong)."""
    unknown = sorted(set(row) - _ALL_COLUMNS)
    if unknown:
        raise UsageError(f"unknown field {', '.join(unknown)}")
    fields = _present(row)
    kind = (_text(fields, "kind") or "").lower()
    if kind not in _COLUMNS:
        raise UsageError(f"kind must be one of {', '.join(_COLUMNS)}, got {kind or 'nothing'!r}")
    _check_fields(kind, fields)
    sdxl = _flag(fields, "sdxl")
    if kind == "train":
        return TrainRequest(_strings(fields, "images"), sdxl=sdxl)
    if kind == "prompt":
        return _prompt_row(fields, sdxl)
    config = _config(fields)
    template = str(_text(fields, "template"))
    if kind == "solo":
        return CreateRequest(str(_text(fields, "model_id")), template, sdxl=sdxl, config=config)
    if kind == "group":
        return GroupCreateRequest(_strings(fields, "model_ids"), template, sdxl=sdxl, config=config)
    reference = str(_text(fields, "reference"))
    return ReferenceCreateRequest(reference, template, sdxl=sdxl, config=config)


def _prompt_row(fields: Mapping[str, Any], sdxl: bool) -> PromptCreateRequest:
    model_id, reference = _text(fields, "model_id"), _text(fields, "reference")
    if (model_id is None) == (reference is None):
        raise UsageError("kind prompt needs exactly one of model_id or reference")
    return PromptCreateRequest(
        prompt=str(_text(fields, "prompt")),
        model_id=model_id,
        template=_text(fields, "template"),
        reference=reference,
        scene_id=_text(fields, "scene_id"),
        sdxl=sdxl,
        config=_config(fields),
    )


def _csv_rows(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None:
        return
    for row in reader:
        if None in row:
            raise UsageError(f"line {reader.line_num}: more cells than columns")
        yield reader.line_num, {k.strip(): v for k, v in row.items() if k is not None}


def _jsonl_rows(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"line {number}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise UsageError(f"line {number}: expected a JSON object")
        yield number, row


def _is_jsonl(path: Path, text: str) -> bool:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return True
    return suffix != ".csv" and text.lstrip().startswith("{")


def _line_numbers(numbers: list[int], shown: int = 5) -> str:
    more = f" and {len(numbers) - shown} more" if len(numbers) > shown else ""
    listed = ", ".join(str(n) for n in numbers[:shown])
    return f"line{'s' if len(numbers) > 1 else ''} {listed}{more}"


def read_plan(path: Path) -> Plan:
    """Parse a batch file (CSV with a header row, or JSON Lines) into a :class:`Plan`.

    Warnings about the rows (see :func:`check_request`) are issued once per message, with the
    file and the lines they concern.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from exc
    rows = _jsonl_rows(text) if _is_jsonl(path, text) else _csv_rows(text)
    plan = Plan()
    index = 0
    notes: dict[tuple[str, type[Warning]], dict[int, None]] = {}
    try:
        for index, (number, row) in enumerate(rows, 1):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", AIPortraitWarning)
                _add_row(plan, number, index, row)
            for w in caught:  # a warning given twice for one row lists its line once
                notes.setdefault((str(w.message), w.category), {})[number] = None
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}") from exc
    if not plan:
        raise UsageError(f"{path}: no items")
    for (message, category), numbers in notes.items():
        warnings.warn(f"{path}: {_line_numbers(list(numbers))}: {message}", category, stacklevel=2)
    return plan


def _add_row(plan: Plan, number: int, index: int, row: dict[str, Any]) -> None:
    try:
        request = row_request(row)
        key = _text(_present(row), "key") or f"row{index}"
    except (UsageError, InvalidArgument) as exc:
        raise UsageError(f"line {number}: {exc}") from exc
    check_request(request)
    if key in plan.trainings or key in plan.creations:
        raise UsageError(f"line {number}: key {key!r} is used twice")
    if isinstance(request, TrainRequest):
        plan.trainings[key] = request
    else:
        plan.creations[key] = request
