// The emulator's dashboard, live: the server renders the page (aiportrait/emulator/
// _dashboard_page.py); this script keeps it current from /_dashboard/events (server-sent events:
// hello holds the whole state, then the changes) and sends the faults form. Rows are built with
// the same markup as _dashboard_page.py (functions of the same names). Every
// server string goes in with textContent or as an attribute value, never as markup.
"use strict";

(function () {
  const BASE = "/_dashboard";
  const KEEP = { jobs: 200, portraits: 200, objects: 200, requests: 100 };

  // -- markup (the twins of _dashboard_page.py's) -------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, String(value));
    }
    for (const child of children) {
      node.append(typeof child === "string" ? visible(child) : child);  // a string: as text
    }
    return node;
  }

  // Control, bidirectional formatting and zero-width characters a client sent, shown as
  // \uXXXX (they would otherwise move or hide the text around them, or hide themselves).
  // HIDDEN in _dashboard_page.py is the same set.
  const HIDDEN = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]/g;

  function visible(value) {
    return value.replace(HIDDEN, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
  }

  function text(value) {
    return value === null || value === undefined ? "None" : String(value);
  }

  function safeUrl(url) {
    if (typeof url !== "string" || url.startsWith("//")) return null;
    return url.startsWith("http://") || url.startsWith("https://") || url.startsWith("/") ? url : null;
  }

  function clock(at) {
    return at ? el("time", { datetime: at }, String(at).slice(11, 19)) : "";
  }

  function seconds(value) {
    if (typeof value !== "number") return "\u2014";
    return (Math.floor(value * 100 + 0.5) / 100).toFixed(2) + " s";
  }

  function thumb(url, alt) {
    const src = safeUrl(url);
    return src === null ? "" : el("a", { href: src }, el("img", { src: src, alt: alt }));
  }

  function jobRow(job) {
    const inputs = (job.photos || []).map((url, i) => thumb(url, "photo " + (i + 1)));
    inputs.push(thumb(job.template, "template"));
    if (job.photo_count) inputs.push(el("span", { class: "tag" }, job.photo_count + " photos"));
    for (const key of ["model_id", "mode"]) {
      if (job[key]) inputs.push(el("span", { class: "tag" }, key + ": " + job[key]));
    }
    const outcome = job.error
      ? el("span", { class: "error" }, String(job.error))
      : thumb(job.result, "result");
    const state = String(job.state);
    return el(
      "tr", { "data-job-id": job.job_id, "data-state": state },
      el("td", null, text(job.job_id)),
      el("td", null, text(job.kind)),
      el("td", null, text(job.app_id)),
      el("td", null, el("span", { class: "state " + state }, state)),
      el("td", { class: "thumbs" }, ...inputs),
      el("td", null, clock(job.created_at)),
      el("td", null, seconds(job.duration)),
      el("td", null, outcome),
    );
  }

  function portraitFigure(portrait) {
    const src = safeUrl(portrait.url);
    const image = src === null ? "" : el("img", { src: src, alt: "portrait of job " + portrait.job_id });
    const link = src === null ? "" : el("a", { class: "full", href: src }, "full image");
    const facts = ["job " + portrait.job_id];
    for (const key of ["model_id", "mode"]) {
      if (portrait[key]) facts.push(key + ": " + portrait[key]);
    }
    return el(
      "figure", { "data-job-id": portrait.job_id },
      image,
      el("figcaption", null,
        el("span", null, facts.join(", ")), " ",
        thumb(portrait.template, "template"), " ",
        clock(portrait.created_at), " ",
        link),
    );
  }

  function objectItem(obj) {
    const src = safeUrl(obj.url);
    const name = text(obj.key);
    const label = src === null ? name : el("a", { href: src }, name);
    return el("li", { "data-key": obj.key }, label, " (" + (obj.size || 0) + " bytes)");
  }

  function chargeRow(charge) {
    const quota = charge.quota_left;
    return el(
      "tr", { "data-app-id": charge.app_id },
      el("td", null, text(charge.app_id)),
      el("td", null, text(charge.trainings)),
      el("td", null, text(charge.creations)),
      el("td", null, quota === null || quota === undefined ? "no quota" : text(quota)),
    );
  }

  function duplicateItem(dup) {
    const said = dup.path + " from " + dup.app_id + ": " +
      "first " + String(dup.first_at).slice(11, 19) + ", last " + String(dup.last_at).slice(11, 19) +
      ", body sha256 " + dup.digest;
    const times = "Charged " + (dup.count || 0) + " times: ";
    return el("li", { "data-digest": dup.digest }, el("strong", null, times), said);
  }

  function duplicateItems(duplicates) {
    const items = duplicates.map(duplicateItem);
    return items.length ? items : [el("li", { class: "none" }, "no duplicates")];
  }

  function counterItems(counters) {
    return Object.entries(counters).map(([name, value]) => {
      if (value !== null && typeof value === "object") {
        value = Object.entries(value).map(([k, v]) => k + ": " + v).join(", ") || "none";
      }
      return el("div", { "data-counter": name }, el("dt", null, name), el("dd", null, text(value)));
    });
  }

  function requestRow(req) {
    const latency = req.latency_ms;
    const shown = typeof latency === "number" ? Math.floor(latency + 0.5) + " ms" : "";
    return el(
      "tr", { "data-status": req.status, "data-fault": req.fault || "" },
      el("td", null, clock(req.at)),
      el("td", null, text(req.method)),
      el("td", null, text(req.path)),
      el("td", null, req.status === null ? "dropped" : text(req.status)),
      el("td", null, shown),
      el("td", null, req.fault || ""),
      el("td", null, req.app_id || ""),
    );
  }

  // -- applying the state and its events ---------------------------------------------------------

  const $ = (selector) => document.querySelector(selector);

  // Put a keyed item first, or update its row in place (same element: its state changes live).
  function upsert(container, selector, fresh, keep) {
    const old = container.querySelector(selector);
    if (old) {
      for (const attr of Array.from(fresh.attributes)) old.setAttribute(attr.name, attr.value);
      old.replaceChildren(...fresh.childNodes);
      return;
    }
    container.prepend(fresh);
    while (container.children.length > keep) container.lastElementChild.remove();
  }

  const key = (value) => CSS.escape(String(value));

  const apply = {
    job(job) {
      upsert($("#jobs tbody"), `tr[data-job-id="${key(job.job_id)}"]`, jobRow(job), KEEP.jobs);
    },
    portrait(p) {
      upsert($("#portraits .gallery"), `figure[data-job-id="${key(p.job_id)}"]`, portraitFigure(p), KEEP.portraits);
    },
    object(obj) {
      if (obj.size === null) {  // deleted
        const old = $("#objects ul").querySelector(`li[data-key="${key(obj.key)}"]`);
        if (old) old.remove();
        return;
      }
      upsert($("#objects ul"), `li[data-key="${key(obj.key)}"]`, objectItem(obj), KEEP.objects);
    },
    request(req) {
      requests([req]);
    },
    charges(data) {
      if (data.counters) $("#counters").replaceChildren(...counterItems(data.counters));
      if (data.charges) $("#charges tbody").replaceChildren(...data.charges.map(chargeRow));
      if (data.duplicates) {
        const section = $("#duplicates");
        section.className = data.duplicates.length ? "flagged" : "clear";
        section.querySelector("ul").replaceChildren(...duplicateItems(data.duplicates));
      }
    },
    // The settings in force; a field being edited (focused, or changed and not applied) keeps
    // what the user typed, unless ``applied`` (the answer to the user's own form).
    faults(faults, applied) {
      const form = $("#faults form");
      for (const [name, value] of Object.entries(faults)) {
        const input = form.elements.namedItem(name);
        if (!input) continue;
        if (!applied && (input === document.activeElement || input.dataset.edited)) continue;
        delete input.dataset.edited;
        if (input.type === "checkbox") input.checked = Boolean(value);
        else if (Array.isArray(value)) input.value = value.join(", ");
        else input.value = value === null ? "" : String(value);
      }
    },
  };

  // Requests, oldest first, put on top of the table (only the last ones kept are built).
  function requests(list) {
    const body = $("#requests tbody");
    body.prepend(...list.slice(-KEEP.requests).reverse().map(requestRow));
    while (body.children.length > KEEP.requests) body.lastElementChild.remove();
  }

  // The whole state (after a (re)connection: the emulator may have restarted, with other jobs),
  // every list rebuilt from it (the state's lists are newest first, as the page shows them).
  function rows(list, keep, row) {
    return (list || []).slice(0, keep).map(row);
  }

  function applyState(hello) {
    const state = hello.state;
    const started = $("header time");
    started.setAttribute("datetime", text(hello.started_at));
    started.textContent = text(hello.started_at);
    apply.charges(state);
    apply.faults(state.faults || {});
    $("#jobs tbody").replaceChildren(...rows(state.jobs, KEEP.jobs, jobRow));
    $("#portraits .gallery").replaceChildren(
      ...rows(state.portraits, KEEP.portraits, portraitFigure));
    $("#objects ul").replaceChildren(...rows(state.objects, KEEP.objects, objectItem));
    $("#requests tbody").replaceChildren(...rows(state.requests, KEEP.requests, requestRow));
  }

  // -- the stream ----------------------------------------------------------------------------------

  // "live", "reconnecting" (the browser retries on its own) or "disconnected" (it gave up: an
  // answer other than 200, such as the 503 of one stream too many; connect() tries again later).
  // (The page starts "connecting\u2026".)
  function setLive(shown) {
    const badge = $("[data-testid=live]");
    badge.textContent = shown;
    badge.dataset.live = shown === "live" ? "yes" : "no";
  }

  // Seconds before connecting again after the browser gave up: doubled each time, at most
  // RETRY_MAX_MS, back to the first after a hello.
  const RETRY_FIRST_MS = 1000;
  const RETRY_MAX_MS = 30000;
  let retryMs = RETRY_FIRST_MS;

  // Events are applied in batches, at most every FLUSH_MS: a busy emulator sends hundreds of
  // requests a second, and only the last ones of a batch are built. A job's states are still
  // applied one after the other, in order.
  const FLUSH_MS = 100;

  function connect() {
    const source = new EventSource(BASE + "/events");
    let queued = [];
    let timer = null;

    function flush() {
      timer = null;
      const batch = queued;
      queued = [];
      const reqs = [];
      for (const [name, data] of batch) {
        if (name === "request") reqs.push(data);
        else apply[name](data);
      }
      if (reqs.length) requests(reqs);
    }

    // hello holds the state as the stream starts; every later event is a change since then.
    source.addEventListener("hello", (event) => {
      queued = [];
      retryMs = RETRY_FIRST_MS;
      applyState(JSON.parse(event.data));
      setLive(source.readyState === EventSource.OPEN ? "live" : "reconnecting");
    });
    for (const name of Object.keys(apply)) {
      source.addEventListener(name, (event) => {
        queued.push([name, JSON.parse(event.data)]);
        if (timer === null) timer = setTimeout(flush, FLUSH_MS);
      });
    }
    source.addEventListener("resync", () => setLive("reconnecting"));
    source.addEventListener("error", () => {
      if (source.readyState !== EventSource.CLOSED) {
        setLive("reconnecting");
        return;
      }
      setLive("disconnected");
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    });
  }

  // -- the faults form -------------------------------------------------------------------------------

  function faultsBody(form) {
    const body = {};
    for (const input of form.querySelectorAll("input[name]")) {
      if (input.type === "checkbox") {
        body[input.name] = input.checked;
      } else if (input.type === "number") {
        if (input.value !== "") body[input.name] = Number(input.value);  // empty: unchanged
      } else {
        const parts = input.value.split(",").map((part) => part.trim()).filter(Boolean);
        body[input.name] = parts.length ? parts : null;  // paths: none given is every path
      }
    }
    return body;
  }

  async function sendFaults(event) {
    event.preventDefault();
    const form = event.target;
    const output = form.querySelector("output");
    output.className = "";
    output.textContent = "Applying\u2026";
    try {
      const answer = await fetch(BASE + "/api/faults", {
        method: "PUT",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(faultsBody(form)),
      });
      const data = await answer.json();
      if (answer.ok) {
        apply.faults(data, true);
        output.textContent = "Applied: " + Object.entries(data)
          .map(([name, value]) => name + "=" + (value === null ? "none" : Array.isArray(value) ? value.join(",") : value))
          .join(", ");
      } else {
        output.className = "error";
        output.textContent = "Refused (" + answer.status + "): " + (data.error || JSON.stringify(data));
      }
    } catch (error) {
      output.className = "error";
      output.textContent = "Not applied: " + error;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = $("#faults form");
    form.addEventListener("submit", sendFaults);
    form.addEventListener("input", (event) => { event.target.dataset.edited = "yes"; });
    connect();
  });
})();
