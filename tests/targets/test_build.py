from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from targets import build

torch = pytest.importorskip("torch", reason="building needs torch (the [build] extra)")


def test_second_build_is_a_cache_hit(scratch_cache: Path) -> None:
    first = build.ensure("mobilenet_v2", "onnx")
    assert first.built and first.path.is_relative_to(scratch_cache)
    started = time.perf_counter()
    second = build.ensure("mobilenet_v2", "onnx")
    elapsed = time.perf_counter() - started
    assert not second.built and second.path == first.path
    assert elapsed < first.seconds / 5, (elapsed, first.seconds)
    assert second.meta["parameters"] == 3_504_872


def test_the_key_follows_the_model_code(scratch_cache: Path, monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    a = build._digest("mobilenet_v2", "onnx")
    assert a == build._digest("mobilenet_v2", "onnx")
    assert a != build._digest("mobilenet_v2", "torch")
    fake = tmp_path / "targets"
    (fake / "models").mkdir(parents=True)
    for p in (build.HERE / "models").glob("*.py"):
        (fake / "models" / p.name).write_text(p.read_text() + "\n# changed\n")
    monkeypatch.setattr(build, "HERE", fake)
    assert build._digest("mobilenet_v2", "onnx") != a


def test_onnx_export_computes_what_torch_computes(scratch_cache: Path) -> None:
    import onnxruntime as ort

    from targets.models.mobilenet_v2 import MobileNetV2

    art = build.ensure("mobilenet_v2", "onnx")
    torch.manual_seed(build.SEED)
    net = MobileNetV2().eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    (got,) = ort.InferenceSession(str(art.path), providers=["CPUExecutionProvider"]).run(
        None, {"input": x})
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


def test_text_classifier_trains_on_the_shipped_corpus(scratch_cache: Path) -> None:
    art = build.ensure("text_rf", "sklearn")
    texts, labels = build.read_corpus()
    assert len(texts) >= 200 and set(labels) == {"bullying", "not_bullying"}
    assert art.meta["training_samples"] == len(texts)
    assert art.meta["training_accuracy"] > 0.95


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(LookupError, match="unknown model 'resnet9000'"):
        build.ensure("resnet9000")
