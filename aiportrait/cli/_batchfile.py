"""The batch file: CSV with a header row, or JSON Lines; one request per row (see docs/cli.md).

A photo, template or reference field that is not a URL is a local file, relative to the batch
file's folder (``~`` expanded); in ``images``, a glob is expanded (sorted) and must match. Every
local file is read and checked while the file is parsed (missing, a directory, not a JPEG or
PNG, too large: one line, exit 2), so nothing is sent for a batch with a bad file; such an item
becomes a :class:`~aiportrait.LocalRequest`, uploaded right before its charged call.
"""

from __future__ import annotations

import csv
import glob
import json
import os
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
from .._local.localrequest import LocalRequest
from .._local.photos import read_photo
from .._requests import T2I_TEMPLATE
from ..errors import AIPortraitWarning, InvalidArgument, LocalPhotoError, PhotoCountWarning
from ._exit import UsageError
from ._local import _GLOB_CHARS, _is_url

__all__ = ["Plan", "check_request", "config_from", "read_plan", "row_request"]

_CONFIG_KEYS: Final = frozenset(a.name for a in attrs.fields(CreateConfig) if a.name != "extra")


def config_from(values: Mapping[str, Any]) -> CreateConfig | None:
    """A :class:`CreateConfig` from a mapping: documented keys as attributes, others in extra."""
    if not values:
        return None
    known = {k: v for k, v in values.items() if k in _CONFIG_KEYS}
    extra = {k: v for k, v in values.items() if k not in _CONFIG_KEYS}
    return CreateConfig(**known, extra=extra or None)


def check_request(request: AnyCreateRequest | TrainRequest | LocalRequest) -> None:
    """Warn now what the library would warn when the request is sent (nothing is sent here).

    A training outside the documented 5 to 20 photos (:class:`PhotoCountWarning`); config keys
    documented for the other model only (:class:`ConfigWarning`).
    """
    if isinstance(request, LocalRequest):
        if request.is_training:
            PhotoCountWarning.check(request.photo_count)
        else:
            config = request.fields.get("config")
            if isinstance(config, CreateConfig):
                config.model_mismatch(sdxl=bool(request.fields.get("sdxl")))
    elif isinstance(request, TrainRequest):
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
    local: dict[str, LocalRequest] = attrs.Factory(dict)
    """Items with local files (trainings and creations; only with ``local_files=True``)."""

    def __len__(self) -> int:
        return len(self.trainings) + len(self.creations) + len(self.local)

    def all_trainings(self) -> dict[str, TrainRequest | LocalRequest]:
        """The trainings, those with local files included."""
        local = {k: v for k, v in self.local.items() if v.is_training}
        return {**self.trainings, **local}

    def all_creations(self) -> dict[str, AnyCreateRequest | LocalRequest]:
        """The creations, those with local files included."""
        local = {k: v for k, v in self.local.items() if not v.is_training}
        return {**self.creations, **local}


@attrs.define
class _Files:
    """Local files of a batch file: resolved against its folder, each checked once."""

    base: Path
    checked: set[Path] = attrs.Factory(set)

    def _check(self, path: Path) -> Path:
        if path not in self.checked:
            try:
                read_photo(path, str(path))
            except LocalPhotoError as exc:
                raise UsageError(str(exc)) from None
            self.checked.add(path)
        return path

    def one(self, name: str, text: str | None) -> str | Path | None:
        """A template or reference: the URL as it is, else the checked local file."""
        if text is None or text == T2I_TEMPLATE or _is_url(text):
            return text
        return self._check(self._path(text))

    def many(self, name: str, texts: list[str]) -> list[str | Path]:
        """Photos: URLs as they are, local files (globs expanded, sorted) checked."""
        out: list[str | Path] = []
        for text in texts:
            if _is_url(text):
                out.append(text)
                continue
            path = self._path(text)
            if _GLOB_CHARS & set(text) and not os.path.lexists(path):
                matches = sorted(glob.glob(str(path)))
                if not matches:
                    raise UsageError(f"{name}: no file matches {text!r}")
                out.extend(self._check(Path(m)) for m in matches)
            else:
                out.append(self._check(path))
        return out

    def _path(self, text: str) -> Path:
        return self.base / os.path.expanduser(text)  # an absolute path stays as it is


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


def row_request(
    row: Mapping[str, Any], base: Path | None = None
) -> AnyCreateRequest | TrainRequest | LocalRequest:
    """The request one batch row describes (raises :class:`UsageError` saying what is wrong).

    With ``base`` (the batch file's folder), fields that are not URLs are local files there
    (see the module), checked now; the item is then a :class:`LocalRequest`.
    """
    return _row_request(row, None if base is None else _Files(base))


def _row_request(
    row: Mapping[str, Any], files: _Files | None
) -> AnyCreateRequest | TrainRequest | LocalRequest:
    unknown = sorted(set(row) - _ALL_COLUMNS)
    if unknown:
        raise UsageError(f"unknown field {', '.join(unknown)}")
    fields = _present(row)
    kind = (_text(fields, "kind") or "").lower()
    if kind not in _COLUMNS:
        raise UsageError(f"kind must be one of {', '.join(_COLUMNS)}, got {kind or 'nothing'!r}")
    _check_fields(kind, fields)
    sdxl = _flag(fields, "sdxl")

    def one(name: str) -> str | Path | None:
        text = _text(fields, name)
        return text if files is None else files.one(name, text)

    if kind == "train":
        images: list[Any] = _strings(fields, "images")
        if files is not None:
            images = files.many("images", images)
        if any(isinstance(v, Path) for v in images):
            return LocalRequest.train(images, sdxl=sdxl)
        return TrainRequest(images, sdxl=sdxl)
    if kind == "prompt":
        return _prompt_row(fields, sdxl, one)
    config = _config(fields)
    template = one("template")
    if kind == "solo":
        model_id = str(_text(fields, "model_id"))
        if isinstance(template, Path):
            return LocalRequest.create(model_id, template, sdxl=sdxl, config=config)
        return CreateRequest(model_id, str(template), sdxl=sdxl, config=config)
    if kind == "group":
        model_ids = _strings(fields, "model_ids")
        if isinstance(template, Path):
            return LocalRequest.create_group(model_ids, template, sdxl=sdxl, config=config)
        return GroupCreateRequest(model_ids, str(template), sdxl=sdxl, config=config)
    reference = one("reference")
    if isinstance(template, Path) or isinstance(reference, Path):
        return LocalRequest.create_from_reference(reference, template, sdxl=sdxl, config=config)
    return ReferenceCreateRequest(str(reference), str(template), sdxl=sdxl, config=config)


def _prompt_row(
    fields: Mapping[str, Any], sdxl: bool, one: Any
) -> PromptCreateRequest | LocalRequest:
    model_id, reference = _text(fields, "model_id"), one("reference")
    if (model_id is None) == (reference is None):
        raise UsageError("kind prompt needs exactly one of model_id or reference")
    template = one("template")
    arguments: dict[str, Any] = {
        "model_id": model_id,
        "template": template,
        "reference": reference,
        "scene_id": _text(fields, "scene_id"),
        "sdxl": sdxl,
        "config": _config(fields),
    }
    prompt = str(_text(fields, "prompt"))
    if isinstance(template, Path) or isinstance(reference, Path):
        return LocalRequest.create_from_prompt(prompt, **arguments)
    return PromptCreateRequest(prompt=prompt, **arguments)


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


def read_plan(path: Path, *, local_files: bool = False) -> Plan:
    """Parse a batch file (CSV with a header row, or JSON Lines) into a :class:`Plan`.

    With ``local_files``, fields that are not URLs are local files (see the module), checked
    now, and their items go to ``plan.local``; without, such a field is refused as not a URL.

    Warnings about the rows (see :func:`check_request`) are issued once per message, with the
    file and the lines they concern.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from exc
    rows = _jsonl_rows(text) if _is_jsonl(path, text) else _csv_rows(text)
    plan = Plan()
    files = _Files(path.parent) if local_files else None
    index = 0
    notes: dict[tuple[str, type[Warning]], dict[int, None]] = {}
    try:
        for index, (number, row) in enumerate(rows, 1):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", AIPortraitWarning)
                _add_row(plan, number, index, row, files)
            for w in caught:  # a warning given twice for one row lists its line once
                notes.setdefault((str(w.message), w.category), {})[number] = None
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}") from exc
    if not plan:
        raise UsageError(f"{path}: no items")
    for (message, category), numbers in notes.items():
        warnings.warn(f"{path}: {_line_numbers(list(numbers))}: {message}", category, stacklevel=2)
    return plan


def _add_row(
    plan: Plan, number: int, index: int, row: dict[str, Any], files: _Files | None
) -> None:
    try:
        request = _row_request(row, files)
        key = _text(_present(row), "key") or f"row{index}"
    except (UsageError, InvalidArgument) as exc:
        raise UsageError(f"line {number}: {exc}") from exc
    check_request(request)
    if key in plan.trainings or key in plan.creations or key in plan.local:
        raise UsageError(f"line {number}: key {key!r} is used twice")
    if isinstance(request, LocalRequest):
        plan.local[key] = request
    elif isinstance(request, TrainRequest):
        plan.trainings[key] = request
    else:
        plan.creations[key] = request
