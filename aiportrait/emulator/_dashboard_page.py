"""The dashboard page rendered on the server from the JSON twin (``/_dashboard/api/state``).

``dashboard/index.html`` is a :class:`string.Template` (a literal dollar sign is ``$$``); every
value put in it is escaped here, so the template places the fragments as they are.
The rows are the same markup ``dashboard/dashboard.js`` builds for a live event (its functions
carry the same names: ``jobRow`` is :func:`job_row`, ...), so a row looks the same whether the
server or the browser made it; ``tests/test_dashboard_browser.py`` compares the two.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping
from string import Template
from typing import Any

__all__ = ["FAULT_HINTS", "render_page"]

#: What each fault field does, shown beside its input (a field not listed shows its name only).
FAULT_HINTS = {
    "seed": "seed of the fault draws",
    "rate_5xx": "share answered with a 5xx",
    "status_5xx": "the 5xx status sent",
    "rate_429": "share answered 429",
    "retry_after": "seconds in Retry-After",
    "drop_before": "share dropped before processing",
    "drop_after": "share processed, then dropped",
    "latency": "seconds of added latency",
    "latency_rate": "share of requests delayed",
    "malformed": "share answered with truncated JSON",
    "job_failure": "share of trainings that fail",
    "outage": "every API request answered 503 (with Retry-After)",
    "paths": "path prefixes affected, comma-separated (empty: all)",
}


def _attrs(attrs: Mapping[str, Any]) -> str:
    return "".join(
        f' {name}="{html.escape(str(value))}"' for name, value in attrs.items() if value is not None
    )


def el(tag: str, attrs: Mapping[str, Any] | None = None, *children: str) -> str:
    """One element; ``children`` are markup (text goes through :func:`text`)."""
    return f"<{tag}{_attrs(attrs or {})}>{''.join(children)}</{tag}>"


#: Control, bidirectional formatting and zero-width characters, shown as ``\\uXXXX`` (they
#: would otherwise move or hide the text around them, or hide themselves: two ids that look
#: the same); ``HIDDEN`` in ``dashboard.js`` is the same set.
HIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]"
)


def visible(value: str) -> str:
    """``value`` with its :data:`HIDDEN` characters written as ``\\uXXXX``."""
    return HIDDEN.sub(lambda found: f"\\u{ord(found.group()):04x}", value)


def text(value: Any) -> str:
    """Text content, escaped, its control characters visible."""
    return html.escape(visible(num(value) if isinstance(value, (int, float)) else str(value)))


def num(value: float) -> str:
    """A number as JavaScript's ``String`` writes it (1.0 is "1")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def safe_url(url: Any) -> str | None:
    """``url`` when it is one to link or load (http, https, or a path), else None."""
    if isinstance(url, str) and (url.startswith(("http://", "https://", "/"))):
        return None if url.startswith("//") else url
    return None


def clock(at: Any) -> str:
    """``<time>`` showing the time of day of an ISO 8601 timestamp."""
    return el("time", {"datetime": at}, text(str(at)[11:19])) if at else ""


def seconds(value: Any) -> str:
    """A duration in seconds with two decimals, or a dash."""
    if not isinstance(value, (int, float)):
        return "\u2014"
    return f"{math.floor(value * 100 + 0.5) / 100:.2f} s"


def img(src: str, alt: str) -> str:
    """An image (a void element: no closing tag)."""
    return f"<img{_attrs({'src': src, 'alt': alt})}>"


def thumb(url: Any, alt: str) -> str:
    """A thumbnail linked to the full image (nothing for a URL that is not one)."""
    src = safe_url(url)
    if src is None:
        return ""
    return el("a", {"href": src}, img(src, alt))


def job_row(job: Mapping[str, Any]) -> str:
    inputs = [thumb(url, f"photo {i + 1}") for i, url in enumerate(job.get("photos") or ())]
    inputs.append(thumb(job.get("template"), "template"))
    if job.get("photo_count"):
        inputs.append(el("span", {"class": "tag"}, text(f"{job['photo_count']} photos")))
    for key in ("model_id", "mode"):
        if job.get(key):
            inputs.append(el("span", {"class": "tag"}, text(f"{key}: {job[key]}")))
    if job.get("error"):
        outcome = el("span", {"class": "error"}, text(job["error"]))
    else:
        outcome = thumb(job.get("result"), "result")
    state = str(job.get("state"))
    return el(
        "tr",
        {"data-job-id": job.get("job_id"), "data-state": state},
        el("td", None, text(job.get("job_id"))),
        el("td", None, text(job.get("kind"))),
        el("td", None, text(job.get("app_id"))),
        el("td", None, el("span", {"class": f"state {state}"}, text(state))),
        el("td", {"class": "thumbs"}, *inputs),
        el("td", None, clock(job.get("created_at"))),
        el("td", None, seconds(job.get("duration"))),
        el("td", None, outcome),
    )


def portrait_figure(portrait: Mapping[str, Any]) -> str:
    src = safe_url(portrait.get("url"))
    image = "" if src is None else img(src, f"portrait of job {portrait.get('job_id')}")
    link = "" if src is None else el("a", {"class": "full", "href": src}, "full image")
    facts = [f"job {portrait.get('job_id')}"]
    facts += [f"{key}: {portrait[key]}" for key in ("model_id", "mode") if portrait.get(key)]
    return el(
        "figure",
        {"data-job-id": portrait.get("job_id")},
        image,
        el(
            "figcaption",
            None,
            el("span", None, text(", ".join(facts))),
            " ",
            thumb(portrait.get("template"), "template"),
            " ",
            clock(portrait.get("created_at")),
            " ",
            link,
        ),
    )


def object_item(obj: Mapping[str, Any]) -> str:
    src = safe_url(obj.get("url"))
    name = text(obj.get("key"))
    label = name if src is None else el("a", {"href": src}, name)
    return el(
        "li", {"data-key": obj.get("key")}, label, text(f" ({num(obj.get('size', 0))} bytes)")
    )


def charge_row(charge: Mapping[str, Any]) -> str:
    quota = charge.get("quota_left")
    return el(
        "tr",
        {"data-app-id": charge.get("app_id")},
        el("td", None, text(charge.get("app_id"))),
        el("td", None, text(charge.get("trainings"))),
        el("td", None, text(charge.get("creations"))),
        el("td", None, text("no quota" if quota is None else quota)),
    )


def duplicate_item(dup: Mapping[str, Any]) -> str:
    said = (
        f"{dup.get('path')} from {dup.get('app_id')}: "
        f"first {str(dup.get('first_at'))[11:19]}, last {str(dup.get('last_at'))[11:19]}, "
        f"body sha256 {dup.get('digest')}"
    )
    times = text(f"Charged {num(dup.get('count', 0))} times: ")
    return el("li", {"data-digest": dup.get("digest")}, el("strong", None, times), text(said))


def duplicate_items(duplicates: Iterable[Mapping[str, Any]]) -> str:
    items = "".join(duplicate_item(d) for d in duplicates)
    return items or el("li", {"class": "none"}, "no duplicates")


def counter_items(counters: Mapping[str, Any]) -> str:
    parts = []
    for name, value in counters.items():
        if isinstance(value, Mapping):
            value = ", ".join(f"{k}: {num(v)}" for k, v in value.items()) or "none"
        parts.append(
            el(
                "div",
                {"data-counter": name},
                el("dt", None, text(name)),
                el("dd", None, text(value)),
            )
        )
    return "".join(parts)


def request_row(req: Mapping[str, Any]) -> str:
    fault = req.get("fault")
    latency = req.get("latency_ms")
    shown = "" if not isinstance(latency, (int, float)) else f"{math.floor(latency + 0.5)} ms"
    return el(
        "tr",
        {"data-status": req.get("status"), "data-fault": fault or ""},
        el("td", None, clock(req.get("at"))),
        el("td", None, text(req.get("method"))),
        el("td", None, text(req.get("path"))),
        el("td", None, text("dropped" if req.get("status") is None else req.get("status"))),
        el("td", None, text(shown)),
        el("td", None, text(fault or "")),
        el("td", None, text(req.get("app_id") or "")),
    )


def fault_field(name: str, value: Any) -> str:
    """One labelled input of the faults form (server-rendered only; the page fills in values)."""
    ident = f"fault-{name}"
    attrs: dict[str, Any] = {"id": ident, "name": name}
    if isinstance(value, bool):
        attrs.update(type="checkbox", checked="" if value else None)
    elif isinstance(value, (int, float)):
        attrs.update(type="number", step="any", value=num(value))
    else:
        shown = ", ".join(value) if isinstance(value, (list, tuple)) else (value or "")
        attrs.update(type="text", value=shown)
    hint = FAULT_HINTS.get(name, "")
    label = el("label", {"for": ident}, text(name), el("small", None, text(hint)) if hint else "")
    return el("div", {"class": "field"}, label, f"<input{_attrs(attrs)}>")


def render_page(template: str, state: Mapping[str, Any]) -> str:
    """The page: ``template`` (``dashboard/index.html``) filled from ``state`` (the JSON twin),
    every value escaped."""
    duplicates = state.get("duplicates") or []
    return Template(template).substitute(
        started_at=html.escape(str(state.get("started_at", ""))),
        duplicates_class="flagged" if duplicates else "clear",
        duplicates=duplicate_items(duplicates),
        charges="".join(charge_row(c) for c in state.get("charges") or ()),
        counters=counter_items(state.get("counters") or {}),
        jobs="".join(job_row(j) for j in state.get("jobs") or ()),
        portraits="".join(portrait_figure(p) for p in state.get("portraits") or ()),
        objects="".join(object_item(o) for o in state.get("objects") or ()),
        faults="".join(fault_field(k, v) for k, v in (state.get("faults") or {}).items()),
        requests="".join(request_row(r) for r in state.get("requests") or ()),
    )
