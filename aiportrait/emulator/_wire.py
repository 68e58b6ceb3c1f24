"""Wire facts the emulator speaks: paths, documented error texts and job states.

These are copied from the service documentation (``ai-portrait-go-sdk.txt``) word for word,
typos included. The client keeps its own copy on purpose, so each side catches the other's
mistakes. The check's verdict codes and messages are in :mod:`aiportrait._vision.verdicts`,
shared with the client's check of local photos.
"""

from __future__ import annotations

from typing import Final

CHECK_PATH: Final = "/api/v1/aigc_images/check"
TRAIN_PATH: Final = "/api/v1/aigc_images/train"
CREATE_PATH: Final = "/api/v1/aigc_images/create"
JOB_PATH_PREFIX: Final = "/api/v1/async_jobs/"
BATCH_PATH_PREFIX: Final = "/api/v1/batch_jobs/"

# Gateway errors: (HTTP status, code, message).
NOT_FOUND_APPID: Final = (400, "PARAMETER_ERROR", "not found appid")
EXCEEDED_QUOTA: Final = (400, "EXCEEDED_QUOTA_ERROR", "exceeded quota")
SIGN_ERROR: Final = (401, "PARAMETER_ERROR", "sign error")
MODEL_NOT_FOUND: Final = (404, "PARAMETER_ERROR", "model not found")

# Create errors: HTTP status and message; the envelope code is "error" in every row.
CREATE_ERROR_CODE: Final = "error"
E462_INVALID_INPUT: Final = "Invalid input data. Please check the input dict."
E462_NO_TEMPLATE: Final = "Image not provided. Please check the template_image."
E462_PROMPTS: Final = "Prompts get error. Please check the model_id."
E462_ROOP_DECODE: Final = "Roop image decode error. Please check the user's lora is trained or not."
E462_TEMPLATE_DECODE: Final = "Template image decode error. Provide a new template"
E462_NO_FACE: Final = "There is not face in template. Please Give a new template."
E462_TEMPLATE_PROCESS: Final = "Template image process error. Please Give a new template."
E469_FIRST_FUSION: Final = "First Face Fusion Error, Can't get face in template image."
E469_FIRST_SD: Final = "First Stable Diffusion Process error. Check the webui status."
E469_SECOND_FUSION: Final = "Second Face Fusion Error, Can't get face in template image."
E469_SECOND_SD: Final = "Second Stable Diffusion Process error. Check the webui status."
E469_FACE_COUNT: Final = (
    "Please confirm if the number of faces in the template corresponds to the user ID."
)
E469_THIRD_SD: Final = "Third Stable Diffusion Process error. Check the webui status."
E500_FACE_ID_DECODE: Final = (
    "Face id image decode error. Pleace check the user's lora is trained or not."
)
CREATE_ERROR_STATUS: Final[dict[str, int]] = {
    E462_INVALID_INPUT: 462,
    E462_NO_TEMPLATE: 462,
    E462_PROMPTS: 462,
    E462_ROOP_DECODE: 462,
    E462_TEMPLATE_DECODE: 462,
    E462_NO_FACE: 462,
    E462_TEMPLATE_PROCESS: 462,
    E469_FIRST_FUSION: 469,
    E469_FIRST_SD: 469,
    E469_SECOND_FUSION: 469,
    E469_SECOND_SD: 469,
    E469_FACE_COUNT: 469,
    E469_THIRD_SD: 469,
    E500_FACE_ID_DECODE: 500,
}

# Job states.
JOB_INIT: Final = 0
JOB_RUNNING: Final = 1
JOB_SUCCESS: Final = 2
JOB_FAILED: Final = 3

TRAIN_XL: Final = "train_xl"
CREATE_XL: Final = "create_xl"
T2I_TEMPLATE: Final = "t2i_generate"
