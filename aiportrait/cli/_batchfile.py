"""The batch file: CSV with a header row, or JSON Lines; one request per row.

The format is described in docs/guides/cli-batch.md.

A row's ``kind`` names a request class (``solo`` :class:`~aiportrait.CreateRequest`, ``group``,
``reference``, ``prompt``, ``train``) and its other fields are that class's arguments, by their
names: the columns each kind takes are read from the class, not listed here. A photo, template
or reference field that is not a URL is a local file, relative to the batch file's folder
(``~`` expanded); in ``images``, a glob is expanded (sorted) and must match. Every local file is
read and checked while the file is parsed (missing, a directory, not a JPEG or PNG, too large:
one line, exit 2), so nothing is sent for a batch with a bad file; such an item's files are
uploaded right before its charged call. A training's ``force`` column skips the face check
made on this machine.

The file's text is read within bounds (its size, its lines, its encoding, how deeply a value
nests: :mod:`._batchtext`); a key is at most :data:`MAX_KEY` characters. Whatever the file
holds, a bad one raises :class:`UsageError` with the file and the line, and quotes a value it
shows only in part.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
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
from .._args import short
from .._batches.journal_format import key_text
from .._local.photos import read_photo
from .._requests import T2I_TEMPLATE
from ..errors import AIPortraitWarning, InvalidArgument, LocalPhotoError, PhotoCountWarning
from ._batchtext import MAX_DEPTH, json_value, read_rows
from ._exit import UsageError
from ._local import PHOTO_FIELDS, is_url, local_inputs

__all__ = ["MAX_KEY", "Item", "Plan", "check_request", "config_from", "read_plan", "row_request"]

MAX_KEY: Final = 256
"""The longest key, characters. A key names an item on each outcome line, in the journal and
in Temporal's outcomes, and it is the portrait's file name (shortened with a digest past 80
characters, see :func:`aiportrait._batches.keys.file_stem`): 256 holds any file name (255
bytes on common file systems) or a path-like id, and keeps an outcome line readable."""

_CONFIG_KEYS: Final = frozenset(a.name for a in attrs.fields(CreateConfig) if a.name != "extra")


def config_from(values: Mapping[str, Any]) -> CreateConfig | None:
    """A :class:`CreateConfig` from a mapping: documented keys as attributes, others in extra."""
    if not values:
        return None
    known = {k: v for k, v in values.items() if k in _CONFIG_KEYS}
    extra = {k: v for k, v in values.items() if k not in _CONFIG_KEYS}
    return CreateConfig(**known, extra=extra or None)


Item = TrainRequest | AnyCreateRequest
"""A request a batch row or a command line describes."""


def check_request(request: Item) -> None:
    """Warn now what the library would warn when the request is sent (nothing is sent here).

    A training outside the documented 5 to 20 photos (:class:`PhotoCountWarning`); config keys
    documented for the other model only (:class:`ConfigWarning`).
    """
    if isinstance(request, TrainRequest):
        PhotoCountWarning.check(len(request.images))
    elif isinstance(request.config, CreateConfig):
        request.config.model_mismatch(sdxl=request.sdxl)


_KINDS: Final[dict[str, type[Any]]] = {
    "solo": CreateRequest,
    "group": GroupCreateRequest,
    "reference": ReferenceCreateRequest,
    "prompt": PromptCreateRequest,
    "train": TrainRequest,
}


def _arguments(cls: type[Any]) -> tuple[frozenset[str], frozenset[str]]:
    """A request class's required and optional arguments (its attrs fields)."""
    fields = [a for a in attrs.fields(cls) if a.init]
    required = frozenset(a.name for a in fields if a.default is attrs.NOTHING)
    return required, frozenset(a.name for a in fields) - required


_COLUMNS: Final = {kind: _arguments(cls) for kind, cls in _KINDS.items()}
_ALL_COLUMNS: Final = frozenset({"kind", "key"}).union(
    *(required | optional for required, optional in _COLUMNS.values())
)
# How a cell is read, by the argument's type; any other argument is a string.
_LISTS: Final = frozenset({"images", "model_ids", "scene_prompts"})
_FLAGS: Final = frozenset({"sdxl", "scene_lora", "force"})
_NUMBERS: Final = frozenset({"ipa_weight"})
_TRUE: Final = frozenset({"1", "true", "yes", "y", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "n", "off", ""})


@attrs.define
class Plan:
    """A batch file, parsed: its items by key, in the file's order."""

    items: dict[str, Item] = attrs.Factory(dict)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def local(self) -> bool:
        """Whether any item has local files."""
        return any(v.local for v in self.items.values())

    def trainings(self) -> dict[str, TrainRequest]:
        """The trainings."""
        return {k: v for k, v in self.items.items() if isinstance(v, TrainRequest)}

    def creations(self) -> dict[str, AnyCreateRequest]:
        """The creations."""
        return {k: v for k, v in self.items.items() if not isinstance(v, TrainRequest)}


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

    def one(self, text: str) -> str | Path:
        """A template or reference: the URL as it is, else the checked local file."""
        if text == T2I_TEMPLATE or is_url(text):
            return text
        return self._check(self.base / os.path.expanduser(text))

    def many(self, name: str, texts: list[str]) -> list[str | Path]:
        """Photos: URLs as they are, local files (globs expanded, sorted) checked."""
        found = local_inputs(texts, name, self.base)
        return [self._check(p) if isinstance(p, Path) else p for p in found]


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
        raise UsageError(f"{name}: expected a string, got {short(value)}")
    return str(value).strip()


def _strings(value: Any, name: str) -> list[str]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    if not isinstance(value, str):
        raise UsageError(f"{name}: expected a list of strings or a '|'-separated string")
    parts = value.split("|") if "|" in value else value.split()
    return [p.strip() for p in parts if p.strip()]


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise UsageError(f"{name}: expected true or false, got {short(value)}")


def _number(value: Any, name: str) -> float:
    number = math.nan
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            number = float(value)
    if not math.isfinite(number):
        raise UsageError(f"{name}: expected a number, got {short(value)}")
    return number


def _config(value: Any) -> CreateConfig | None:
    if isinstance(value, str):
        try:
            value = json_value(value, MAX_DEPTH - 1)  # as deep as in a JSON Lines row
        except UsageError as exc:
            raise UsageError(f"config: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError("config: expected a JSON object")
    try:
        return config_from(value)
    except InvalidArgument as exc:
        raise UsageError(f"config: {exc}") from exc


def _check_fields(kind: str, row: Mapping[str, Any]) -> None:
    required, optional = _COLUMNS[kind]
    missing = sorted(required - row.keys())
    if missing:
        raise UsageError(f"kind {kind} needs {', '.join(missing)}")
    unused = sorted(row.keys() - required - optional - {"kind", "key"})
    if unused:
        raise UsageError(f"kind {kind} does not use {_listed(unused)}")


def _argument(name: str, value: Any, files: _Files | None) -> Any:
    """One cell as the request class takes it (see the module)."""
    if name in _LISTS:
        values: list[Any] = _strings(value, name)
        return files.many(name, values) if files is not None and name in PHOTO_FIELDS else values
    if name in _FLAGS:
        return _flag(value, name)
    if name in _NUMBERS:
        return _number(value, name)
    if name == "config":
        return _config(value)
    text = _text({name: value}, name)
    return files.one(str(text)) if files is not None and name in PHOTO_FIELDS else text


def row_request(row: Mapping[str, Any], base: Path | None = None) -> Item:
    """The request one batch row describes (raises :class:`UsageError` saying what is wrong).

    With ``base`` (the batch file's folder), fields that are not URLs are local files there
    (see the module), checked now; the request holds them as paths.
    """
    return _row_request(row, None if base is None else _Files(base))


def _row_request(row: Mapping[str, Any], files: _Files | None) -> Item:
    unknown = sorted(set(row) - _ALL_COLUMNS)
    if unknown:
        raise UsageError(f"unknown field {_listed([short(k, 40) for k in unknown])}")
    fields = _present(row)
    kind = (_text(fields, "kind") or "").lower()
    if kind not in _KINDS:
        raise UsageError(f"kind must be one of {', '.join(_KINDS)}, got {short(kind or 'nothing')}")
    _check_fields(kind, fields)
    names = sorted(fields.keys() - {"kind", "key"}, key=lambda k: k in PHOTO_FIELDS)
    arguments = {k: _argument(k, fields[k], files) for k in names}  # local files last
    request: Item = _KINDS[kind](**arguments)
    return request


def _listed(values: Sequence[object], shown: int = 5) -> str:
    """``a, b, c, d, e and 7 more``."""
    more = f" and {len(values) - shown} more" if len(values) > shown else ""
    return ", ".join(str(v) for v in values[:shown]) + more


def _line_numbers(numbers: list[int]) -> str:
    return f"line{'s' if len(numbers) > 1 else ''} {_listed(numbers)}"


Check = Callable[[str, Item], None]
"""A command's own check of an item (its key and request), raising :class:`UsageError`."""


def read_plan(path: Path, check: Check | None = None) -> Plan:
    """Parse a batch file (CSV with a header row, or JSON Lines) into a :class:`Plan`.

    Fields that are not URLs are local files (see the module), checked now. ``check`` is
    called with each item's key and request (``temporal batch`` refuses an item too large for
    Temporal); what it raises is reported with the file and the line.

    Warnings about the rows (see :func:`check_request`) are issued once per message, with the
    file and the lines they concern.
    """
    rows = read_rows(path)
    plan = Plan()
    files = _Files(path.parent)
    index = 0
    notes: dict[tuple[str, type[Warning]], dict[int, None]] = {}
    try:
        for index, (number, row) in enumerate(rows, 1):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", AIPortraitWarning)
                _add_row(plan, number, index, row, files, check)
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
    plan: Plan, number: int, index: int, row: dict[str, Any], files: _Files, check: Check | None
) -> None:
    try:
        key = _text(_present(row), "key") or f"row{index}"
        if len(key) > MAX_KEY:
            raise UsageError(f"key: {len(key)} characters, over the {MAX_KEY} a key may have")
        key_text(key)  # a key the journal and a file name can hold
        request = _row_request(row, files)
        if check is not None:
            check(key, request)
    except (UsageError, InvalidArgument) as exc:
        raise UsageError(f"line {number}: {exc}") from exc
    check_request(request)
    if key in plan.items:
        raise UsageError(f"line {number}: key {short(key)} is used twice")
    plan.items[key] = request
