"""Study 001's architecture 6, all serverless: an upload to S3 triggers an *encoding* function
(``targets.pipeline.handler``) that reads the image, encodes it for the detector (resized to the
model's input, JPEG, base64 in a JSON event) and invokes the *inference* function through
Lambda's Invoke API, synchronously; the answer is written back to S3 as ``results/<key>.json``.

The encoding function loads no model. Set ``SERVEBENCH_INFERENCE_FUNCTION`` to the inference
function's name and ``SERVEBENCH_LAMBDA_ENDPOINT`` to the Invoke API's base URL (the local
platform's ``http://127.0.0.1:PORT``); ``SERVEBENCH_ENCODE_SIZE`` is the side of the square the
image is resized to (default 320, the detectors' input). The encoding function waits for the
inference function, and Lambda bills both.

It calls the Invoke API with boto3, as a function on Lambda would: signed with the credentials
the platform puts in the sandbox's environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``), which the platform checks.
"""

from __future__ import annotations

import base64
import io
import json
import os
from typing import Any

from .s3events import BadInput, answer_s3_objects, s3_objects

WARMUP_EVENT = {"servebench": "warmup"}
_lambda: Any = None


def encode(image: bytes, side: int) -> bytes:
    """The image resized to ``side`` x ``side`` and JPEG-encoded (what the detector takes)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(image)) as img:
            small = img.convert("RGB").resize((side, side))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadInput(f"415: not an image this function can decode ({exc})") from None
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=90)
    return out.getvalue()


def lambda_client() -> Any:
    """One boto3 Lambda client per sandbox, made on first use, on the Invoke API at
    ``SERVEBENCH_LAMBDA_ENDPOINT``; no retries (a throttled call is the caller's error, as
    before), and the inference function's timeout to wait."""
    global _lambda
    if _lambda is None:
        endpoint = os.environ.get("SERVEBENCH_LAMBDA_ENDPOINT")
        if not endpoint:
            raise RuntimeError("set SERVEBENCH_LAMBDA_ENDPOINT to the Invoke API's base URL")
        import boto3
        from botocore.config import Config

        _lambda = boto3.client("lambda", endpoint_url=endpoint,
                               config=Config(retries={"total_max_attempts": 1},
                                             connect_timeout=10, read_timeout=120))
    return _lambda


def invoke(function: str, event: dict[str, Any]) -> bytes:
    """A synchronous invocation through the Invoke API; a function error raises ``BadInput``
    (the caller's 4xx) or ``RuntimeError`` (anything else)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        resp = lambda_client().invoke(FunctionName=function, Payload=json.dumps(event).encode())
        body: bytes = resp["Payload"].read()
    except ClientError as exc:
        meta = exc.response.get("ResponseMetadata", {})
        raise RuntimeError(f"invoking {function}: HTTP {meta.get('HTTPStatusCode')}: "
                           f"{str(exc)[:300]}") from None
    except BotoCoreError as exc:  # no connection, a read timeout
        raise RuntimeError(f"invoking {function}: {str(exc)[:300]}") from None
    error = resp.get("FunctionError")
    if error:
        doc = json.loads(body or b"{}")
        message = str(doc.get("errorMessage", doc))
        if message[:3].isdigit() and message[0] == "4":
            raise BadInput(message)
        raise RuntimeError(f"{function} failed ({error}): {message[:300]}")
    return body


def handler(event: Any, context: Any) -> dict[str, Any]:
    if event == WARMUP_EVENT:
        return {"warm": True}
    objects = s3_objects(event)
    if objects is None:
        raise BadInput("400: the encoding function takes S3 notification events")
    function = os.environ.get("SERVEBENCH_INFERENCE_FUNCTION")
    if not function:
        raise RuntimeError("set SERVEBENCH_INFERENCE_FUNCTION to the inference function")
    side = int(os.environ.get("SERVEBENCH_ENCODE_SIZE") or 320)

    def infer(body: bytes, url: str) -> bytes:
        encoded = base64.b64encode(encode(body, side)).decode()
        return invoke(function, {"image_b64": encoded})

    return {"results": answer_s3_objects(objects, infer), "routed": "function"}
