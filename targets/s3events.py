"""S3 notification events for the functions: the objects an event names, one S3 client per
sandbox, and the read-answer-write loop (study 001's object-storage path). No model is loaded
here, so a function that only moves data (``targets.pipeline``) imports it without one."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any


class BadInput(Exception):
    """Raised for bad input in a direct invoke; the message starts with the HTTP-style status."""


_s3: Any = None


def s3_objects(event: Any) -> list[tuple[str, str]] | None:
    """(bucket, key) of each object in an S3 notification event, or None for other events."""
    if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
        return None
    out = []
    for rec in event["Records"]:
        try:
            out.append((str(rec["s3"]["bucket"]["name"]), str(rec["s3"]["object"]["key"])))
        except (KeyError, TypeError):
            raise BadInput("400: an S3 event record needs s3.bucket.name and s3.object.key") \
                from None
    return out


def s3_client() -> Any:
    """One boto3 S3 client per sandbox, made on first use (boto3's own endpoint settings,
    e.g. ``AWS_ENDPOINT_URL_S3`` for a local S3)."""
    global _s3
    if _s3 is None:
        import boto3

        _s3 = boto3.client("s3")
    return _s3


def answer_s3_objects(objects: list[tuple[str, str]],
                      answer: Callable[[bytes, str], bytes]) -> list[str]:
    """Study 001's object-storage path: read each object, ``answer(body, "s3://bucket/key")``
    it, write the answer back as ``results/<key>.json`` in the same bucket (or
    ``$SERVEBENCH_RESULT_BUCKET``); the written URLs."""
    from urllib.parse import unquote_plus

    s3 = s3_client()
    written = []
    for bucket, raw_key in objects:
        key = unquote_plus(raw_key)  # S3 events URL-encode keys
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            raise BadInput(f"404: no object s3://{bucket}/{key}") from None
        out_bucket = os.environ.get("SERVEBENCH_RESULT_BUCKET") or bucket
        out_key = f"results/{key}.json"
        s3.put_object(Bucket=out_bucket, Key=out_key, Body=answer(body, f"s3://{bucket}/{key}"),
                      ContentType="application/json")
        written.append(f"s3://{out_bucket}/{out_key}")
    return written


