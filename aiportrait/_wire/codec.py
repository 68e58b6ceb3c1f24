"""The one cattrs converter: wire JSON <-> models, and the body encoder.

Tolerant where the service may vary (``Result`` or ``result``, ``1`` or ``1.0``, unknown keys,
unlisted enum values), strict where a wrong type would hide a bug: every failure to read a
response becomes :class:`~aiportrait.errors.MalformedResponse`.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs

from ..errors import MalformedResponse
from ..models import (
    CheckReport,
    CheckVerdict,
    ImageCheck,
    Job,
    JobState,
    Portrait,
    TrainJob,
    TrainResult,
)
from .convert import strict_converter
from .signing import (
    PresignedURL,
    PrivateBytes,
    presigned,
    public_text,
    redacted,
    without_signatures,
)

__all__ = [
    "converter",
    "decode_check",
    "decode_job",
    "decode_portrait",
    "decode_train",
    "encode_body",
]

if TYPE_CHECKING:
    import cattrs

    converter: cattrs.Converter
    """The cattrs converter for every model; use it to store and reload job handles."""

T = TypeVar("T")

_converter: cattrs.Converter | None = None


def _get_converter() -> cattrs.Converter:
    """The converter, built on first use: the answers' usual shapes are read without it, so
    ``import aiportrait`` does not load cattrs."""
    global _converter
    if _converter is None:
        _converter = _build_converter()
    return _converter


def __getattr__(name: str) -> Any:
    if name == "converter":
        return _get_converter()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _build_converter() -> cattrs.Converter:
    conv = strict_converter()
    conv.register_unstructure_hook(Portrait, lambda p: {"format": p.format, "size": len(p.image)})
    return conv


# The fast paths below read the usual shapes (exact JSON types) directly; anything else goes
# through the converter, whose answer (a value or a MalformedResponse) is the reference.
_VERDICTS: Final = {int(member): member for member in CheckVerdict}
_STATES: Final = {int(member): member for member in JobState}

_CHECK_CODE_BY_MESSAGE = {
    "success": CheckVerdict.SUCCESS,
    "image decode error.": CheckVerdict.DECODE_ERROR,
    "number of face is not 1.": CheckVerdict.FACE_COUNT,
    "image detect error.": CheckVerdict.DETECT_ERROR,
    "image encoding error.": CheckVerdict.ENCODING_ERROR,
    "this photo is not the same person in photos.": CheckVerdict.NOT_SAME_PERSON,
}


_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_DECODER: Final = json.JSONDecoder()


def loads(data: str | bytes | bytearray) -> Any:
    """``json.loads(data)``, with a shortcut for what answers are: a UTF-8 JSON object with no
    white space around it (read with one call of the C scanner, without the encoding sniffing
    and the white-space matching that ``json.loads`` does in Python). Anything else, and any
    error, goes to ``json.loads`` itself, so the value or the exception is the same."""
    if isinstance(data, str):
        text = data
    elif data[:1] == b"{" and data[1:2] != b"\0":  # not UTF-16 or UTF-32, no BOM
        try:
            text = data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return json.loads(data)
    else:
        return json.loads(data)
    if text[:1] == "{" and text[-1:] == "}":
        try:
            value, end = _DECODER.raw_decode(text)
        except ValueError:
            return json.loads(data)
        if end == len(text):
            return value
    return json.loads(data)


def encode_body(payload: Mapping[str, Any]) -> PrivateBytes:
    """Encode a request body once: compact JSON, UTF-8, no NaN or infinity. A presigned URL
    in it is sent whole (JSON reads a ``str`` subclass's text, not its ``str()``); the bytes'
    ``repr`` hides them (they are in the frames of a failed call)."""
    return PrivateBytes(_ENCODER.encode(payload).encode())


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if type(value) is dict:  # what JSON gives: no trip through the Mapping ABC
        return value
    if not isinstance(value, Mapping):
        raise MalformedResponse(f"{what} is not a JSON object but {type(value).__name__}")
    return value


def _structure(value: Any, cls: type[T], what: str) -> T:
    import cattrs

    try:
        return _get_converter().structure(value, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        detail = "; ".join(cattrs.transform_error(exc)) if isinstance(exc, Exception) else ""
        raise MalformedResponse(f"cannot read {what}: {detail or exc}") from None


def _float_of(value: Any, what: str) -> float:
    """A number from an answer (``None`` reads as 0.0)."""
    kind = type(value)
    if kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return float(value)
    return _structure(value if value is not None else 0.0, float, what)


def _str_of(value: Any, what: str) -> str:
    if type(value) is str:
        return value
    return _structure(value, str, what)


_NO_CODE: Final = object()

# The models an answer fills in are built here without their attrs __init__, which sets each
# field through object.__setattr__ (frozen): 2 k instructions more per object than setting its
# slots directly, 11 k per check of 5 photos. The values are the same (tests compare them).
_new: Final = object.__new__


def _setters(cls: type, *names: str) -> tuple[Callable[[object, Any], None], ...]:
    """The slot setters of the frozen model ``cls``; ``names`` must be all its fields, in
    order (a field added to the model and not here fails at import)."""
    fields = tuple(field.name for field in attrs.fields(cls))
    if names != fields:
        raise AssertionError(f"{cls.__name__} has the fields {fields}, not {names}")
    return tuple(cls.__dict__[name].__set__ for name in names)


_IC_URL, _IC_CODE, _IC_MESSAGE, _IC_FRONTAL, _IC_DETAIL = _setters(
    ImageCheck, "url", "code", "message", "frontal", "detail"
)
_CR_RESULTS, _CR_IMAGES, _CR_COST_TIME, _CR_REQUEST_ID = _setters(
    CheckReport, "results", "images", "cost_time", "request_id"
)
_TR_MODEL_ID, _TR_COST_TIME, _TR_STATES = _setters(TrainResult, "model_id", "cost_time", "states")
_JOB_ID, _JOB_STATE, _JOB_MESSAGE, _JOB_APP_ID, _JOB_RAW, _JOB_RESULT, _JOB_REQUEST_ID = _setters(
    Job, "job_id", "state", "message", "app_id", "raw_result", "result", "request_id"
)


def _image_check(raw: Any, what: str, index: int | None = None) -> ImageCheck:
    """One verdict: ``what`` (``[index]``) names it in an error."""
    if type(raw) is dict:
        url = raw.get("url", "")
        code = raw.get("code", _NO_CODE)
        message = raw.get("message", "")
        frontal = raw.get("frontal", False)
        if isinstance(url, str) and type(message) is str and type(frontal) is bool:
            if type(code) is int:
                verdict = _VERDICTS.get(code)
                if verdict is None:
                    verdict = CheckVerdict(code)
            elif code is _NO_CODE:
                verdict = _CHECK_CODE_BY_MESSAGE.get(message.casefold()) or CheckVerdict(0)
            else:
                verdict = None
            if verdict is not None:
                detail = raw.get("emulator_detail")
                check = _new(ImageCheck)
                _IC_URL(check, presigned(url))
                _IC_CODE(check, verdict)
                _IC_MESSAGE(check, message)
                _IC_FRONTAL(check, frontal)
                _IC_DETAIL(check, " ".join(detail.split()) if isinstance(detail, str) else "")
                return check
    return _image_check_slow(raw, what if index is None else f"{what}[{index}]")


def _image_check_slow(raw: Any, what: str) -> ImageCheck:
    item = dict(_mapping(raw, what))
    if "code" not in item:
        # Training states may omit the code; the documented message tells it.
        message = item.get("message")
        code = _CHECK_CODE_BY_MESSAGE.get(message.casefold()) if isinstance(message, str) else None
        item["code"] = code if code is not None else 0
    item.setdefault("url", "")
    # The emulator explains a verdict in "emulator_detail"; informative only, so a value that
    # is not a string is dropped rather than failing the whole answer.
    detail = item.pop("emulator_detail", None)
    item["detail"] = " ".join(detail.split()) if isinstance(detail, str) else ""
    check = _structure(item, ImageCheck, what)
    _IC_URL(check, presigned(check.url))
    return check


def _hide_urls(results: Any, images: Any, sent: Iterable[object]) -> None:
    """A check answer's URLs as :class:`PresignedURL` values, in the answer itself (the frames
    of a failure to read it hold none usable): one ``sent`` as one is that value (a local
    photo's keeps its path); any other signed URL is wrapped (:func:`presigned`)."""
    known: dict[str, Any] = {url: url for url in sent if isinstance(url, PresignedURL)}
    if type(results) is list:
        for raw in results:
            if type(raw) is dict and isinstance(url := raw.get("url"), str):
                raw["url"] = known.get(url) or presigned(url)
    if type(images) is list:
        images[:] = [(known.get(i) or presigned(i)) if isinstance(i, str) else i for i in images]


def decode_check(data: Any, request_id: str, sent: Iterable[object] = ()) -> CheckReport:
    """Read the ``data`` of a check answer. A URL it echoes is a :class:`PresignedURL` (shown
    query-less); one of the ``sent`` URLs uploaded from a local photo is that very value
    (shown as the photo's path)."""
    data = _mapping(data, "check data")
    results = data.get("check_results") or []
    images = data.get("images") or []
    _hide_urls(results, images, sent)
    if not isinstance(results, list):
        raise MalformedResponse("check data.check_results is not a list")
    if not isinstance(images, list):
        raise MalformedResponse("check data.images is not a list of strings")
    for image in images:
        if not isinstance(image, str):
            raise MalformedResponse("check data.images is not a list of strings")
    checks = []
    for i, raw in enumerate(results):
        checks.append(_image_check(raw, "check_results", i))
    report = _new(CheckReport)
    _CR_RESULTS(report, tuple(checks))
    _CR_IMAGES(report, tuple(images))
    _CR_COST_TIME(report, _float_of(data.get("cost_time", 0.0), "check cost_time"))
    _CR_REQUEST_ID(report, str(data.get("request_id") or request_id))
    return report


def decode_train(data: Any) -> TrainJob:
    """Read the ``data`` of a train answer."""
    data = _mapping(data, "train data")
    for key in ("job_id", "model_id"):
        if key not in data:
            raise MalformedResponse(f"train data has no {key}")
    return TrainJob(
        job_id=_job_id(data["job_id"], "train data.job_id"),
        model_id=_str_of(data["model_id"], "train data.model_id"),
    )


def parse_train_result(raw: str | None) -> TrainResult | None:
    """Parse a job's ``Result`` string as a training result; ``None`` when it is not one."""
    if not raw:
        return None
    try:
        value = loads(raw)
    except (ValueError, RecursionError):
        return None
    if not (type(value) is dict or isinstance(value, Mapping)) or not isinstance(
        value.get("model_id"), str
    ):
        return None
    states = value.get("states") or []
    if not isinstance(states, list):
        states = []
    try:
        checks = tuple([_image_check(s, "Result.states") for s in states])
        cost = _float_of(value.get("cost_time") or 0.0, "Result.cost_time")
    except MalformedResponse:
        checks, cost = (), 0.0
    result = _new(TrainResult)
    _TR_MODEL_ID(result, value["model_id"])
    _TR_COST_TIME(result, cost)
    _TR_STATES(result, checks)
    return result


def decode_job(data: Any, job_id: int, request_id: str) -> Job:
    """Read the ``data`` of a job answer (``{"job": {...}}``)."""
    job = _mapping(_mapping(data, "job data").get("job"), "job data.job")
    if type(job) is dict:  # the Result text hidden in the answer itself (see _hide_urls)
        for key in ("Result", "result"):
            if isinstance(job.get(key), str):
                job[key] = redacted(job[key])
    if "state" not in job:
        raise MalformedResponse("job data.job has no state")
    value = job["state"]
    state = _STATES.get(value) if type(value) is int else None
    if state is None:
        state = _structure(value, JobState, "job state")
    raw = job.get("Result", job.get("result"))
    if raw is not None and not isinstance(raw, str):
        raw = redacted(json.dumps(raw))  # a server that sends an object instead of a string
    decoded = _new(Job)
    _JOB_ID(decoded, _job_id(job.get("id", job_id), "job id"))
    _JOB_STATE(decoded, state)
    _JOB_MESSAGE(decoded, public_text(_optional_str(job.get("message"), "job message")))
    _JOB_APP_ID(decoded, _optional_str(job.get("app_id"), "job app_id"))
    _JOB_RAW(decoded, None if raw is None else without_signatures(str(raw)))  # a plain str
    _JOB_RESULT(decoded, parse_train_result(raw) if state is JobState.SUCCESS else None)
    _JOB_REQUEST_ID(decoded, _optional_str(job.get("request_id"), "job request_id") or request_id)
    return decoded


def decode_batch(data: Any, request_id: str) -> tuple[Job, ...]:
    """Read the ``data`` of a batch answer (``{"jobs": [...]}``)."""
    jobs = _mapping(data, "batch data").get("jobs") or []
    if not isinstance(jobs, list):
        raise MalformedResponse("batch data.jobs is not a list")
    out = []
    for i, job in enumerate(jobs):
        item = _mapping(job, f"batch jobs[{i}]")
        out.append(decode_job({"job": item}, _job_id(item.get("id", 0), "id"), request_id))
    return tuple(out)


def decode_portrait(
    data: Any, request_id: str, lifted: memoryview | None = None, decoded: bytes | None = None
) -> Portrait:
    """Read the ``data`` of a create answer: base64 image (a ``data:`` prefix is tolerated).

    ``lifted`` is the image's base64 text cut out of the body by the transport, decoded here
    straight from the receive buffer (no intermediate string or copy); ``decoded`` is the image
    the transport already decoded as the answer arrived.
    """
    data = _mapping(data, "create data")
    image = data.get("image")
    # The image the transport decoded as the answer arrived, else the base64 text.
    raw = decoded if decoded is not None and image == "" else _base64_image(image, lifted)
    if not raw:
        raise MalformedResponse("create data.image is empty")
    return Portrait.from_bytes(
        raw,
        cost_time=_float_of(data.get("cost_time", 0.0), "create cost_time"),
        request_id=request_id,
    )


def _base64_image(image: object, lifted: bytes | bytearray | memoryview | None) -> bytes:
    """The image of a create answer from its base64 text: the ``lifted`` bytes the transport
    cut out of the body, else the ``image`` string (a ``data:`` prefix is tolerated)."""
    if lifted is not None and image == "":
        source: Any = lifted
        head = bytes(lifted[:256])
        if head.startswith(b"data:") and b"," in head:
            source = lifted[head.index(b",") + 1 :]
    elif isinstance(image, str) and image:
        source = image.partition(",")[2] if image.startswith("data:") else image
    else:
        raise MalformedResponse("create data has no image")
    try:
        return binascii.a2b_base64(source)
    except (binascii.Error, ValueError) as exc:
        raise MalformedResponse(f"create data.image is not base64: {exc}") from None


JOB_ID_MAX = 2**31 - 1
"""The largest job id: ids are documented as int32 (Go ``JobId int32``, Java ``Integer``)."""


def _job_id(value: Any, what: str) -> int:
    """A job id from an answer: an integer from 0 to :data:`JOB_ID_MAX`, else malformed."""
    if type(value) is int and 0 <= value <= JOB_ID_MAX:
        return value
    job_id = _structure(value, int, what)
    if not 0 <= job_id <= JOB_ID_MAX:
        raise MalformedResponse(
            f"{what} is outside the documented range of job ids (0 to {JOB_ID_MAX})"
        )
    return job_id


def _optional_str(value: Any, what: str) -> str:
    if value is None:
        return ""
    return value if type(value) is str else _structure(value, str, what)
