"""Every documented error row maps to its own class; unknown errors fall back by status."""

from __future__ import annotations

import pickle

import pytest

import aiportrait
import aiportrait.errors as E

ROWS = [
    (400, "PARAMETER_ERROR", "not found appid", E.UnknownApp),
    (400, "EXCEEDED_QUOTA_ERROR", "exceeded quota", E.QuotaExceeded),
    (401, "PARAMETER_ERROR", "sign error", E.SignatureMismatch),
    (404, "PARAMETER_ERROR", "model not found", E.ModelNotDeployed),
    (462, "error", "Invalid input data. Please check the input dict.", E.InvalidInput),
    (462, "error", "Image not provided. Please check the template_image.", E.TemplateNotProvided),
    (462, "error", "Prompts get error. Please check the model_id.", E.ModelIdError),
    (462, "error", "Roop image decode error. Please check the user's lora is trained or not.",
     E.ModelNotTrained),
    (462, "error", "Template image decode error. Provide a new template", E.TemplateDecodeError),
    (462, "error", "There is not face in template. Please Give a new template.",
     E.NoFaceInTemplate),
    (462, "error", "Template image process error. Please Give a new template.",
     E.TemplateProcessError),
    (469, "error", "First Face Fusion Error, Can't get face in template image.",
     E.FirstFaceFusionError),
    (469, "error", "First Stable Diffusion Process error. Check the webui status.",
     E.FirstDiffusionError),
    (469, "error", "Second Face Fusion Error, Can't get face in template image.",
     E.SecondFaceFusionError),
    (469, "error", "Second Stable Diffusion Process error. Check the webui status.",
     E.SecondDiffusionError),
    (469, "error",
     "Please confirm if the number of faces in the template corresponds to the user ID.",
     E.FaceCountMismatch),
    (469, "error", "Third Stable Diffusion Process error. Check the webui status.",
     E.ThirdDiffusionError),
    (500, "error", "Face id image decode error. Pleace check the user's lora is trained or not.",
     E.FaceIdDecodeError),
]  # fmt: skip


@pytest.mark.parametrize(("status", "code", "message", "cls"), ROWS)
def test_documented_rows(status: int, code: str, message: str, cls: type[E.APIError]) -> None:
    err = E.error_from_response(status, code, message, "rid-1")
    assert type(err) is cls
    assert (err.status, err.code, err.message, err.request_id) == (status, code, message, "rid-1")
    assert "rid-1" in str(err)
    assert message in str(err)
    assert isinstance(err, E.AIPortraitError)
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is cls
    assert copy.message == message


def test_every_row_has_its_own_class() -> None:
    assert len({row[3] for row in ROWS}) == len(ROWS)


def test_message_match_folds_space_and_case() -> None:
    err = E.error_from_response(400, "X", "  Not  Found AppId ")
    assert isinstance(err, E.UnknownApp)


@pytest.mark.parametrize(
    ("status", "cls"),
    [(429, E.RateLimited), (418, E.ClientError), (503, E.ServerError), (200, E.ServiceError),
     (302, E.APIError)],
)  # fmt: skip
def test_unknown_errors_fall_back_by_status(status: int, cls: type[E.APIError]) -> None:
    err = E.error_from_response(status, "SOMETHING", "new failure")
    assert type(err) is cls


def test_rate_limited_carries_retry_after() -> None:
    err = E.error_from_response(429, "", "slow down", retry_after=2.5)
    assert isinstance(err, E.RateLimited)
    assert err.retry_after == 2.5


def test_group_bases() -> None:
    assert issubclass(E.FirstFaceFusionError, E.FaceFusionError)
    assert issubclass(E.ThirdDiffusionError, E.DiffusionError)
    assert issubclass(E.FaceCountMismatch, E.CreateError)
    assert issubclass(E.SignatureMismatch, E.GatewayError)
    assert issubclass(E.InvalidArgument, ValueError)


def test_module_docstring_draws_every_class() -> None:
    doc = E.__doc__ or ""
    for name in E.__all__:
        if name != "error_from_response":
            assert name in doc, name


def test_rate_limited_pickles_with_retry_after() -> None:
    err = E.error_from_response(429, "", "slow down", "r", retry_after=3.0)
    copy = pickle.loads(pickle.dumps(err))
    assert isinstance(copy, E.RateLimited)
    assert copy.retry_after == 3.0


def test_error_rows_live_in_aiportrait_errors_and_the_old_top_level_names_warn() -> None:
    assert "RateLimited" not in aiportrait.__all__
    assert "SubmitOutcomeUnknown" in aiportrait.__all__  # what most callers catch stays
    with pytest.warns(DeprecationWarning, match=r"aiportrait\.errors\.RateLimited"):
        old = aiportrait.RateLimited  # type: ignore[attr-defined]
    assert old is aiportrait.errors.RateLimited
    assert len(aiportrait.__all__) < 50
    with pytest.warns(DeprecationWarning, match=r"aiportrait\.config\.SD15_ONLY_KEYS"):
        keys = aiportrait.SD15_ONLY_KEYS  # type: ignore[attr-defined]
    assert keys is aiportrait.config.SD15_ONLY_KEYS
