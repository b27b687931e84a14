"""Study 004's runtime comparison as in-process micro-benchmarks, with pytest-benchmark's
``benchmark`` fixture (``shared/seeds/004_879fac299c025206.txt``; see ``suites/README.md``).

The study served its models in a function under ONNX Runtime and under TensorFlow and found
ONNX Runtime up to 8.2x faster; our heavier framework is PyTorch (the models are built with it),
and ``test_004_serving_bursts.py`` measures the comparison through a function (cold start and
warm latency, request decoding included). Here the same model files
(``targets.build.ensure``: the studies' seeded weights) run raw inference only, no HTTP, no
decoding: one call on a batch of B random inputs, each runtime on one thread so that they are
compared like for like. Batch sizes per model show what a batch buys per input (the study's
batch case) before any serving cost. Each case's ``extra_info`` holds its per-input time.

pytest-benchmark is the right tool for these (many short, repeatable calls; its statistics,
``--benchmark-compare`` and ``--benchmark-histogram``). It cannot gate on percentiles or
confidence intervals: the servebench gate (``--servebench-compare``) stays the one for the
serving cases.

    pytest suites/test_004_runtime_microbench.py --benchmark-columns=min,median,mean,rounds
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pytest_benchmark", reason="the micro-benchmarks need pytest-benchmark")
np = pytest.importorskip("numpy")

# Deselected by any --target: these run in this process, on no serving target.
pytestmark = pytest.mark.study_target("in-process")

ROUNDS = 5
# (model, input size or token count, batch sizes): the study's image model at the batch sizes
# of its batch case, its detector and the text model at two.
IMAGE_MODELS = {"mobilenet_v2": (224, (1, 4, 16)), "ssdlite_mobilenet_v2": (320, (1, 4))}
TEXT_TOKENS = 128


def _artifact(model: str, runtime: str) -> Path:
    """The model file, built when the cache lacks it (building needs torch)."""
    build = pytest.importorskip("targets.build", reason="the studies' models (targets/)")
    try:
        path: Path = build.ensure(model, runtime).path
    except ImportError as exc:
        pytest.skip(f"{model} ({runtime}) is not built and cannot be here: {exc}")
    return path


def _onnx(path: Path) -> Any:
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(benchmark: Any, call: Callable[[], object], batch_size: int) -> None:
    call()  # the first call allocates; it is not what is measured
    benchmark.pedantic(call, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    median_s = benchmark.stats.stats.median
    benchmark.extra_info.update(batch_size=batch_size,
                                ms_per_input=round(median_s * 1e3 / batch_size, 3))


def _images(size: int, batch_size: int) -> Any:
    rng = np.random.default_rng(0)
    return rng.standard_normal((batch_size, 3, size, size)).astype(np.float32)


@pytest.mark.parametrize(("model", "batch_size"),
                         [(m, b) for m, (_, sizes) in IMAGE_MODELS.items() for b in sizes])
def test_onnx_runtime(benchmark: Any, model: str, batch_size: int) -> None:
    size = IMAGE_MODELS[model][0]
    session = _onnx(_artifact(model, "onnx"))
    x = _images(size, batch_size)
    benchmark.group = f"{model} batch={batch_size}"
    _run(benchmark, lambda: session.run(None, {"input": x}), batch_size)


@pytest.mark.parametrize("batch_size", IMAGE_MODELS["mobilenet_v2"][1])
def test_torch_runtime(benchmark: Any, batch_size: int) -> None:
    torch = pytest.importorskip("torch", reason="the torch runtime needs torch "
                                                "(python3 -m pip install torch)")
    from targets.models.mobilenet_v2 import MobileNetV2

    torch.set_num_threads(1)
    net = MobileNetV2().eval()
    net.load_state_dict(torch.load(_artifact("mobilenet_v2", "torch"), map_location="cpu",
                                   weights_only=True))
    x = torch.from_numpy(_images(224, batch_size))

    def infer() -> object:
        with torch.inference_mode():
            return net(x)

    benchmark.group = f"mobilenet_v2 batch={batch_size}"
    _run(benchmark, infer, batch_size)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_text_model_onnx(benchmark: Any, batch_size: int) -> None:
    session = _onnx(_artifact("albert_base", "onnx"))
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 30000, (batch_size, TEXT_TOKENS), dtype=np.int64)
    mask = np.ones_like(ids)
    benchmark.group = f"albert_base batch={batch_size}"
    _run(benchmark, lambda: session.run(None, {"input_ids": ids, "attention_mask": mask}),
         batch_size)
