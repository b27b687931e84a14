"""Batched requests (study 004's batch sizes): one call, one inference over the stacked batch,
the same answers as one image at a time."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from targets.core import BadInput, Limits, Request, from_http
from targets.core.inputs import MAX_BATCH
from targets.payloads import jpeg


def test_a_batch_answers_each_image_as_a_single_call_would(core_factory: Any) -> None:
    core = core_factory("mobilenet_v2")
    images = [jpeg(96, 96, seed=s) for s in range(4)]
    batch = core.predict(Request(images=tuple(images)))
    assert batch["batch"] == 4 and len(batch["answers"]) == 4
    for img, got in zip(images, batch["answers"], strict=True):
        single = core.predict(Request(image=img))
        assert [c["class"] for c in got["classes"]] == [c["class"] for c in single["classes"]]
        assert got["classes"][0]["score"] == pytest.approx(single["classes"][0]["score"],
                                                           rel=1e-4)


def test_batches_arrive_as_json(core_factory: Any) -> None:
    b64 = base64.b64encode(jpeg(64, 64)).decode()
    req = from_http(f'{{"images_b64": ["{b64}", "{b64}"]}}'.encode(), "application/json",
                    Limits())
    assert req.images is not None and len(req.images) == 2


@pytest.mark.parametrize(("body", "status"), [
    (b'{"images_b64": []}', 400),
    (b'{"images_b64": "abc"}', 400),
    (b'{"images_b64": ["%%%"]}', 400),
    (b'{"images_b64": [""]}', 400),
    (('{"images_b64": [' + ",".join(['"AAAA"'] * (MAX_BATCH + 1)) + "]}").encode(), 413),
])
def test_bad_batches_are_4xx(body: bytes, status: int) -> None:
    with pytest.raises(BadInput) as info:
        from_http(body, "application/json", Limits())
    assert info.value.status == status


def test_a_batch_with_one_bad_image_is_a_4xx(core_factory: Any) -> None:
    core = core_factory("mobilenet_v2")
    with pytest.raises(BadInput) as info:
        core.predict(Request(images=(jpeg(64, 64), b"not an image")))
    assert info.value.status == 415


def test_text_targets_refuse_image_batches(core_factory: Any) -> None:
    with pytest.raises(BadInput) as info:
        core_factory("text_rf").predict(Request(images=(jpeg(64, 64),)))
    assert info.value.status == 415
