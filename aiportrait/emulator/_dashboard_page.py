"""The dashboard page rendered on the server: the state (the JSON twin) as HTML fragments put
into the page template ``dashboard/index.html`` (a :class:`string.Template`; a literal dollar
sign is written ``$$``).

Every text and attribute value is HTML-escaped here, so the template places the fragments as
they are. The placeholders:

``${started_at}``
    when the emulator started (ISO 8601 UTC).
``${state_json}``
    the JSON twin, safe inside ``<script type="application/json">`` (``<``, ``>`` and ``&``
    are ``\\u`` escapes).
``${counters}``
    ``<dt>``/``<dd>`` pairs, one per counter (fault counters as ``faults 429`` ...).
``${jobs}``
    ``<tr data-job-id data-state>`` rows: id, kind, app, state, inputs (thumbnails), duration,
    result (a link) or error.
``${portraits}``
    ``<figure data-job-id>`` with ``<a class="full"><img></a>`` and a ``<figcaption>``.
``${objects}``
    ``<li data-key>`` with a link to the object and its size.
``${charges}``
    ``<tr data-app-id>`` rows: app, trainings, creations, quota left.
``${duplicates}``
    ``<li data-digest>`` items, or one ``<li class="none">no duplicates</li>``.
``${requests}``
    ``<tr data-status data-fault>`` rows: time, method, path, status, latency, fault, app.
``${fault_<field>}``
    the value of each fault setting (``${fault_rate_429}`` ...; ``${fault_paths}``: the path
    prefixes, comma-separated), escaped for an attribute.

The page's script keeps the same markup up to date from the events; the stable hooks of the
browser tests (``data-job-id``, ``data-state`` ...) are the ones above.
"""

from __future__ import annotations

import dataclasses
import html
import json
from collections.abc import Iterable, Mapping
from string import Template
from typing import Any

from ._faults import Faults

__all__ = ["render_page"]


def _e(value: Any) -> str:
    """``value`` as escaped text (None as an empty string)."""
    return "" if value is None else html.escape(str(value), quote=True)


def _cells(values: Iterable[Any]) -> str:
    return "".join(f"<td>{_e(v)}</td>" for v in values)


def _thumbnails(urls: Iterable[str]) -> str:
    return "".join(
        f'<img class="thumb" src="{_e(u)}" alt="input image" loading="lazy">' for u in urls
    )


def _job(job: Mapping[str, Any]) -> str:
    inputs = [*job["photos"], *([job["template"]] if job["template"] else [])]
    if job["result"]:
        outcome = f'<a href="{_e(job["result"])}">portrait</a>'
    else:
        outcome = _e(job["error"] or job["model_id"] or "")
    return (
        f'<tr data-job-id="{_e(job["job_id"])}" data-state="{_e(job["state"])}">'
        f"{_cells((job['job_id'], job['kind'], job['app_id']))}"
        f'<td class="state">{_e(job["state"])}</td>'
        f"<td>{_thumbnails(inputs)}</td><td>{_e(job['duration'])}</td><td>{outcome}</td></tr>"
    )


def _portrait(portrait: Mapping[str, Any]) -> str:
    url = _e(portrait["url"])
    caption = " / ".join(_e(portrait[k]) for k in ("model_id", "mode", "created_at") if portrait[k])
    return (
        f'<figure data-job-id="{_e(portrait["job_id"])}"><a class="full" href="{url}">'
        f'<img src="{url}" alt="portrait {_e(portrait["job_id"])}" loading="lazy"></a>'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _object(obj: Mapping[str, Any]) -> str:
    return (
        f'<li data-key="{_e(obj["key"])}"><a href="{_e(obj["url"])}">{_e(obj["key"])}</a> '
        f"({_e(obj['size'])} bytes)</li>"
    )


def _charge(row: Mapping[str, Any]) -> str:
    left = "no quota" if row["quota_left"] is None else row["quota_left"]
    return (
        f'<tr data-app-id="{_e(row["app_id"])}">'
        f"{_cells((row['app_id'], row['trainings'], row['creations'], left))}</tr>"
    )


def _duplicate(row: Mapping[str, Any]) -> str:
    return (
        f'<li data-digest="{_e(row["digest"])}"><strong>{_e(row["count"])} times</strong> '
        f"{_e(row['path'])} from {_e(row['app_id'])}, body {_e(row['digest'])}, "
        f"first {_e(row['first_at'])}, last {_e(row['last_at'])}</li>"
    )


def _request(row: Mapping[str, Any]) -> str:
    fields = ("at", "method", "path", "status", "latency_ms", "fault", "app_id")
    return (
        f'<tr data-status="{_e(row["status"])}" data-fault="{_e(row["fault"])}">'
        f"{_cells(row[f] for f in fields)}</tr>"
    )


def _counters(counters: Mapping[str, Any]) -> str:
    flat = {k: v for k, v in counters.items() if k != "faults"}
    flat.update({f"faults {k}": v for k, v in sorted(counters["faults"].items())})
    return "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in flat.items())


def _script_json(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(template: str, state: Mapping[str, Any]) -> str:
    """The page: ``template`` with the placeholders of the module docs filled from ``state``."""
    values = {
        "started_at": _e(state["started_at"]),
        "state_json": _script_json(state),
        "counters": _counters(state["counters"]),
        "jobs": "".join(map(_job, state["jobs"])),
        "portraits": "".join(map(_portrait, state["portraits"])),
        "objects": "".join(map(_object, state["objects"])),
        "charges": "".join(map(_charge, state["charges"])),
        "duplicates": "".join(map(_duplicate, state["duplicates"]))
        or '<li class="none">no duplicates</li>',
        "requests": "".join(map(_request, state["requests"])),
    }
    faults = state["faults"]
    for field in dataclasses.fields(Faults):
        value = faults[field.name]
        if field.name == "paths":
            value = ", ".join(value or ())
        values[f"fault_{field.name}"] = _e(value)
    return Template(template).substitute(values)
