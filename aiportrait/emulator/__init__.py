"""A local emulator of Alibaba Cloud PAI AI Portrait: a stand-in that does no diffusion.

It speaks the service's protocol exactly (``PROTOCOL.md``, the service documentation): the same
paths, the HMAC signature verified over the raw received bytes (so traffic from the official Go,
Java, PHP and Python SDKs all passes), the response envelope, asynchronous training jobs with
states 0 -> 1 -> 2/3 and a ``"Result"`` JSON string, and the documented gateway and create errors
word for word. Instead of training LoRAs and running Stable Diffusion, it does real, cheap image
work: decoding and size checks, face detection, landmarks and identity descriptors (dlib), and
portraits composed by aligning the trained face onto each template face and blending it (OpenCV).

Run it::

    python -m aiportrait.emulator --port 8089 --train-seconds 3      # or: aiportrait emulator

or in process::

    async with Emulator(train_seconds=0.05) as emu:
        async with emu.session() as session:      # an aiportrait.Session bound to it
            ...

Calls
    ``POST /api/v1/aigc_images/check``, ``/train``, ``/create``; ``POST`` or ``GET
    /api/v1/async_jobs/{id}``; ``GET /api/v1/batch_jobs/{id}`` (the jobs added with that
    ``batch_id`` through :meth:`Emulator.add_synthetic_job`, possibly none); unsigned ``GET
    /media/{name}`` (files of ``serve_dir``) and ``GET /healthz``. An OSS-compatible bucket
    (``emu.bucket``, default ``aiportrait-local``): ``PUT``, ``HEAD``, ``GET``, ``DELETE
    /<bucket>/<key>``, path-style, every request verified as an OSS V4 signature (header or
    presigned query) with an AppId as access key id and its token as secret; errors are OSS's XML
    (``SignatureDoesNotMatch`` 403, ``AccessDenied`` "Request has expired.", ``NoSuchKey``).

Dashboard
    ``GET /`` redirects to ``/_dashboard/``: a page of the jobs, portraits, bucket objects,
    charges per app (with the charged bodies that arrived twice), fault settings (changeable)
    and the last requests, live; ``/_dashboard/api/state`` is its JSON twin and
    ``/_dashboard/events`` its server-sent events (``docs/guides/dashboard.md``). Open on
    loopback; on any other address every ``/_dashboard`` path needs HTTP Basic with an AppId
    and its token (``dashboard_auth``).

Images
    ``data:`` URLs; ``file://`` under ``file_root``; http(s) from loopback hosts only unless
    ``allow_remote``. A URL the emulator may not fetch counts as undecodable (check verdict 2;
    for a template, 462 "Template image decode error"). Limits: ``max_image_bytes``,
    ``fetch_timeout``, ``max_pixels`` (decompression bombs are refused from the header),
    ``max_request_pixels`` for all the photos of one check or training (each distinct URL is
    fetched and decoded once, photos are analysed one at a time at most 2048 px a side), and
    ``max_body_bytes`` for request bodies (413).

Check results
    Each ``check_results`` entry (and each ``states`` entry of a training's ``Result``) keeps the
    documented ``code`` and ``message`` word for word and adds ``emulator_detail``, a short
    sentence with the cause ("HTTP 404 from http://...", "image is 300x300, smaller than
    512x512", "not an image (text/plain)", "remote URLs are refused; start the emulator with
    --allow-remote to fetch them"). The causes are logged too (``--log-level INFO``).

Requests
    The ``Authorization`` header is checked (a known AppId, a signature of 64 hex digits) before
    the body is read, so a request no app sent costs nothing. A body must arrive within
    ``read_timeout`` seconds (408, then the connection closes); a connection that sends no
    complete request, or stays idle, that long is closed. Nothing of a request is kept after it
    is answered.

``configure`` keys of create
    Honoured (mapped to a real image operation, see ``_options.ComposeOptions``):
    ``lora_weights``, ``more_like_me``, ``ipa_control``, ``ipa_weight`` (blend strength);
    ``first_denoising_strength`` (mask size), ``second_denoising_strength`` (mask feather);
    ``apply_face_fusion_before``, ``apply_face_fusion_after`` (the two blends);
    ``color_shift_middle``, ``color_shift_last`` (colour transfer); ``face_shape_match``;
    ``makeup_transfer``, ``makeup_transfer_ratio``; ``skin_retouching_bool`` (edge-preserving
    smoothing); ``photo_enhancement_bool``, ``photo_enhancement_method`` (denoise or detail
    enhancement); ``sharp_ratio`` (unsharp mask); ``crop_face_preprocess`` (work region);
    ``background_restore``; ``style_name`` (``Anime`` stylises); ``t2i_prompt`` (a scene painted
    from the prompt's words); ``scene_id`` (a trained scene's palette); ``ipa_control_only`` with
    ``ipa_image_path`` (the reference photo's face blended at ``ipa_weight``, with the reference's
    colours and, on SD1.5, a slide-film look: visibly not a trained portrait; no training).
    Accepted and ignored: ``first_diffusion_steps``, ``second_diffusion_steps``,
    ``lcm_accelerate``. Unknown keys are ignored; a documented key with a value of the wrong
    type is 462 "Invalid input data".

Train ``configure`` keys
    ``train_scene_lora_bool`` (with ``model_name="train_xl"``) and ``scene_lora_prompts`` (one
    per image, else 400); the scene's ``model_id`` works as create's ``scene_id``.

Choices where the documentation is silent
    * Unknown job id, or another app's: 404 ``PARAMETER_ERROR`` "job not found".
    * A check or train body that is not the documented JSON object: 400 ``PARAMETER_ERROR``
      "Invalid input data. Please check the input dict."; create answers the documented 462.
      More than 100 images, or ``scene_lora_prompts`` not one per image: 400 with a message
      saying so. A body with a ``Content-Encoding``: 400 "request body cannot be read (no
      Content-Encoding is accepted)"; too large: 413; not received in time: 408.
    * Unknown ``model_id`` (or another app's): 462 "Prompts get error. Please check the
      model_id."; a model whose training has not succeeded: 462 "Roop image decode error ...";
      a stored model that cannot be read: 500 "Face id image decode error ...".
    * A missing ``Authorization``: 400 "not found appid"; one whose signature is not 64 hex
      digits: 401 "sign error". A present ``X-Request-Time`` more than
      ``time_skew`` seconds away from now: 401 ``PARAMETER_ERROR`` "request time expired".
    * The quota counts check, train and create calls that pass the signature check; job and
      batch queries are free, and so is a call the emulator itself fails (500).
    * Started with a ``data_dir``, the emulator keeps its AppId and token in
      ``credentials.json`` there (mode 0600) and reuses them on the next start, unless a token
      is given.
    * A training with no usable photo fails (state 3) with EasyPhoto's "Failed to obtain
      preprocessed images, please check the preprocessing process."; with no photo at all,
      "Please upload training photos."; a forced failure (``Faults.job_failure``), "Failed to
      obtain Lora after training, please check the training process.". The ``Result`` of a
      failed training still carries ``cost_time``, ``states`` and ``model_id``.
    * The created image is JPEG when the template was JPEG, PNG otherwise (and for text-to-image).
    * ``emu.hold(path, after=N)`` holds the calls to ``path`` after the first N once they are
      counted (and charged), unanswered until ``Hold.release()``: calls in flight on the
      service, for a test to act on (stop a batch, send a signal) without timing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._auth import AppConfig
    from ._emulator import Emulator
    from ._faults import Counters, Faults, Hold

__all__ = ["AppConfig", "Counters", "Emulator", "Faults", "Hold"]

# Loaded on first use, so that importing this package (as the CLI and the pytest plugin do)
# does not load the server with it.
_LAZY = {
    "AppConfig": "._auth",
    "Counters": "._faults",
    "Emulator": "._emulator",
    "Faults": "._faults",
    "Hold": "._faults",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if name == "main":  # it was the command line's, which is now aiportrait emulator
        raise AttributeError(
            "aiportrait.emulator.main is gone: the emulator's command is aiportrait emulator "
            "(from Python: aiportrait.cli.main(['emulator', ...]))"
        )
    if module is None:
        raise AttributeError(f"module 'aiportrait.emulator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
