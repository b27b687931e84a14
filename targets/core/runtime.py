"""The inference core: load a target's artifact once, then ``predict(request)`` per request.

Each answer carries the core's own timings (decode, inference, post-process, in ms) so a client can
split latency. Loading records its own phases (runtime import, model load, first inference) for
the cold-start decomposition of study 004.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from .errors import BadInput
from .inputs import Limits, Request


def default_slots() -> int:
    return max(1, int(os.environ.get("SERVEBENCH_INFERENCE_SLOTS") or 1))


def default_decode_slots() -> int:
    raw = os.environ.get("SERVEBENCH_DECODE_SLOTS")
    return max(1, int(raw)) if raw else _cpus()


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    raw = os.environ.get("SERVEBENCH_THREADS")
    return max(1, int(raw)) if raw else _cpus()


class Core:
    """Base class: subclasses implement ``_import``, ``_load_model``, ``_warm`` and
    ``predict``."""

    kind = ""

    def __init__(self, name: str, path: Path, meta: dict[str, Any], *, threads: int,
                 limits: Limits, slots: int = 1) -> None:
        self.name, self.path, self.meta = name, path, meta
        self.threads, self.limits, self.slots = threads, limits, slots
        self.init_timings: dict[str, float] = {}
        self.device = default_device()
        # What ran the model once loaded: an ONNX Runtime execution provider
        # ("CUDAExecutionProvider", "CPUExecutionProvider") or "torch:cuda" / "torch:cpu".
        self.provider = ""
        # ``slots`` inferences at a time, each on ``threads`` cores: slots x threads should not
        # pass the cores, or calls only oversubscribe them. Decoding overlaps inference, but
        # only ``decode_slots`` requests decode at once: each may hold a request's pixel budget
        # in memory (targets/README.md), and more decodes than cores gain nothing.
        self._lock = threading.BoundedSemaphore(slots)
        self._decoding = threading.BoundedSemaphore(default_decode_slots())

    def load(self, *, parallel: bool = False, source: ModelSource | None = None) -> Core:
        """Import the runtime, fetch the model (from object storage when ``source`` is given),
        load it, run one inference: study 004's cold-start steps, each timed.

        ``parallel`` is 004's "Parallel 1": once the storage client is imported, the model
        downloads in a thread while the serving libraries import. With the model on local
        disk there is no download to overlap and the steps run in order."""
        overlap = parallel and source is not None
        self.init_timings["parallel"] = 1.0 if overlap else 0.0
        fetched: list[Path] = []
        failure: list[BaseException] = []
        worker: threading.Thread | None = None
        if source is not None:
            t = time.perf_counter()
            source.prepare()
            self._timed("storage_import_s", t)
            if overlap:
                def fetch() -> None:
                    try:
                        fetched.append(source.download())
                    except BaseException as exc:  # re-raised in the loading thread
                        failure.append(exc)

                worker = threading.Thread(target=fetch, name="servebench-model-download")
                worker.start()
        t = time.perf_counter()
        self._import()
        self._timed("import_s", t)
        if source is not None:
            t = time.perf_counter()
            if worker is not None:
                worker.join()
                if failure:
                    raise failure[0]
                self.path = fetched[0]
                self._timed("download_wait_s", t)
                self.init_timings["download_s"] = source.seconds
            else:
                self.path = source.download()
                self._timed("download_s", t)
        t = time.perf_counter()
        self._load_model()
        self._timed("model_load_s", t)
        t = time.perf_counter()
        self._warm()
        self._timed("first_inference_s", t)
        return self

    def _import(self) -> None:
        raise NotImplementedError

    def _load_model(self) -> None:
        raise NotImplementedError

    def _warm(self) -> None:
        raise NotImplementedError

    def _timed(self, key: str, started: float) -> float:
        now = time.perf_counter()
        self.init_timings[key] = now - started
        return now

    def predict(self, request: Request) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"target": self.name, "kind": self.kind, "runtime": self.meta.get("runtime"),
                "threads": self.threads, "slots": self.slots, "device": self.device,
                "provider": self.provider,
                "parameters": self.meta.get("parameters"),
                "model_bytes": self.path.stat().st_size}


def _ms(t0: float, t1: float) -> float:
    return round((t1 - t0) * 1000, 3)


DEVICES = ("auto", "cpu", "cuda")


def default_device() -> str:
    """Where inference runs: ``$SERVEBENCH_DEVICE``, one of ``auto`` (the default: the GPU
    when the runtime and a GPU are both here, else the CPU), ``cpu`` or ``cuda`` (the GPU, or a
    clear error). Backends set it for the servers they start: ``cuda`` on an instance type with
    a GPU, ``cpu`` on the others, so a CPU instance never borrows this machine's GPU."""
    raw = (os.environ.get("SERVEBENCH_DEVICE") or "auto").strip().lower()
    if raw not in DEVICES:
        raise ValueError(f"SERVEBENCH_DEVICE is one of {', '.join(DEVICES)}, not {raw!r}")
    return raw


class DeviceError(RuntimeError):
    """``SERVEBENCH_DEVICE=cuda`` and the runtime cannot run on a GPU here."""


GPU_EXTRA_HINT = ("install the CUDA build of ONNX Runtime in place of the CPU one: pip uninstall "
                  "-y onnxruntime && pip install 'pytest-servebench[gpu]'")


def _ort_providers(ort: Any, device: str) -> list[str]:
    """The execution providers to ask ONNX Runtime for, best first."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        if device == "cuda":
            raise DeviceError(f"SERVEBENCH_DEVICE=cuda, but this onnxruntime "
                              f"({getattr(ort, '__version__', '?')}) has no CUDAExecutionProvider "
                              f"(it has {', '.join(ort.get_available_providers())}): "
                              + GPU_EXTRA_HINT)
        return ["CPUExecutionProvider"]
    preload = getattr(ort, "preload_dlls", None)  # onnxruntime >= 1.21: CUDA and cuDNN from
    if preload is not None:                       # the nvidia-* wheels when they are installed
        with contextlib.suppress(Exception):
            preload()
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def _ort_session(path: Path, threads: int, device: str = "cpu") -> Any:
    """An ONNX Runtime session on ``device``; ``session.get_providers()[0]`` is the provider
    that runs it (ONNX Runtime falls back to the CPU when a GPU provider cannot start: with
    ``device="cuda"`` that is an error, with ``"auto"`` the CPU is what runs)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle intra-op threads would spin for the next call and take the CPU that decoding the
    # next request needs; a server overlaps the two.
    so.add_session_config_entry("session.intra_op.allow_spinning",
                                os.environ.get("SERVEBENCH_ORT_SPIN", "0"))
    session = ort.InferenceSession(str(path), so, providers=_ort_providers(ort, device))
    ran = session.get_providers()[0]
    if device == "cuda" and ran != "CUDAExecutionProvider":
        raise DeviceError(f"SERVEBENCH_DEVICE=cuda, but ONNX Runtime could not start its CUDA "
                          f"provider and fell back to {ran} (no GPU visible, or CUDA/cuDNN "
                          "libraries missing: see the server log)")
    return session


def _torch_device(torch: Any, device: str) -> str:
    if device == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise DeviceError(f"SERVEBENCH_DEVICE=cuda, but torch {torch.__version__} sees no CUDA "
                          "device (a CPU build of torch, or no GPU visible)")
    return "cpu"


class ImageCore(Core):
    runtime_name = "onnx"

    def _import(self) -> None:
        import numpy  # noqa: F401
        import PIL.Image  # noqa: F401

        if self.meta["runtime"] == "torch":
            import torch

            torch.set_num_threads(self.threads)
            self._torch = torch
        else:
            import onnxruntime  # noqa: F401

    def _load_model(self) -> None:
        if self.meta["runtime"] == "torch":
            from ..models.mobilenet_v2 import MobileNetV2

            net = MobileNetV2().eval()
            net.load_state_dict(self._torch.load(self.path, map_location="cpu",
                                                 weights_only=True))
            self._where = _torch_device(self._torch, self.device)
            self._net = net.to(self._where)
            self.provider = f"torch:{self._where}"
        else:
            self._session = _ort_session(self.path, self.threads, self.device)
            self.provider = self._session.get_providers()[0]
        self.size = int(self.meta["input_size"])

    def _run(self, x: Any) -> list[Any]:
        with self._lock:
            if self.meta["runtime"] == "torch":
                with self._torch.inference_mode():
                    out = self._net(self._torch.from_numpy(x).to(self._where))
                return [out.cpu().numpy()]
            return list(self._session.run(None, {"input": x}))

    def _warm(self) -> None:
        import numpy as np

        self._run(np.zeros((1, 3, self.size, self.size), np.float32))

    def predict(self, request: Request) -> dict[str, Any]:
        if request.images is not None:
            return self._predict_batch(request.images)
        if request.image is None:
            raise BadInput(415, f"target {self.name!r} takes an image, not text")
        t0 = time.perf_counter()
        x, sizes = self._tensor((request.image,), names=("",))
        t1 = time.perf_counter()
        outputs = self._run(x)
        t2 = time.perf_counter()
        answer = self._postprocess(outputs, sizes[0])
        t3 = time.perf_counter()
        answer["timings_ms"] = {"decode": _ms(t0, t1), "inference": _ms(t1, t2),
                                "postprocess": _ms(t2, t3)}
        answer["target"] = self.name
        return answer

    def _tensor(self, images: tuple[bytes, ...],
                names: tuple[str, ...]) -> tuple[Any, list[tuple[int, int]]]:
        """The model's input for ``images``: every header checked and the request's pixel budget
        counted before anything is decoded, then one image at a time decoded straight into its
        slot of the batch (so a batch holds one decoded image at a time, never all of them)."""
        import numpy as np

        from . import imaging

        opened = [imaging.open_image(data, self.limits, name=name)
                  for data, name in zip(images, names, strict=True)]
        imaging.check_budget(opened, self.limits)
        x = np.empty((len(images), 3, self.size, self.size), np.float32)
        with self._decoding:
            sizes = [imaging.load_into(img, x[i], name=names[i])
                     for i, img in enumerate(opened)]
        return x, sizes

    def _postprocess(self, outputs: list[Any], size: tuple[int, int]) -> dict[str, Any]:
        raise NotImplementedError

    def _predict_batch(self, images: tuple[bytes, ...]) -> dict[str, Any]:
        """Decode each image, run one inference over the stacked batch, answer per image."""
        t0 = time.perf_counter()
        x, sizes = self._tensor(images, tuple(f"images_b64[{i}]" for i in range(len(images))))
        t1 = time.perf_counter()
        outputs = self._run(x)
        t2 = time.perf_counter()
        answers = [self._postprocess([o[i:i + 1] for o in outputs], size)
                   for i, size in enumerate(sizes)]
        t3 = time.perf_counter()
        return {"target": self.name, "batch": len(images), "answers": answers,
                "timings_ms": {"decode": _ms(t0, t1), "inference": _ms(t1, t2),
                               "postprocess": _ms(t2, t3)}}


class ClassifyCore(ImageCore):
    kind = "classify"
    top_k = 5

    def _postprocess(self, outputs: list[Any], size: tuple[int, int]) -> dict[str, Any]:
        import numpy as np

        logits = outputs[0][0].astype(np.float64)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        top = np.argsort(-p)[: self.top_k]
        return {"classes": [{"class": int(i), "label": f"class_{int(i)}", "score": float(p[i])}
                            for i in top]}


class DetectCore(ImageCore):
    kind = "detect"

    def _load_model(self) -> None:
        super()._load_model()
        from .detect import default_boxes

        self.anchors = default_boxes(self.meta["feature_maps"],
                                     int(self.meta["anchors_per_location"]))

    def _postprocess(self, outputs: list[Any], size: tuple[int, int]) -> dict[str, Any]:
        from .detect import postprocess

        boxes = postprocess(outputs[0][0], outputs[1][0], self.anchors,
                            iou_threshold=float(self.meta["nms_iou"]))
        w, h = size
        return {"boxes": [{"box": [round(float(b[0]) * w, 1), round(float(b[1]) * h, 1),
                                   round(float(b[2]) * w, 1), round(float(b[3]) * h, 1)],
                           "score": round(float(s), 5), "class": int(c)}
                          for b, s, c in boxes]}


class TextCore(Core):
    kind = "text"

    def _import(self) -> None:
        import numpy  # noqa: F401

        if self.meta["runtime"] == "sklearn":
            import joblib  # noqa: F401
            import sklearn  # noqa: F401
        else:
            import onnxruntime  # noqa: F401

    def _load_model(self) -> None:
        if self.meta["runtime"] == "sklearn":
            import joblib

            with open(self.path, "rb") as f:
                self._pipe = joblib.load(f)
            self.provider = "sklearn:cpu"
        else:
            self._session = _ort_session(self.path, self.threads, self.device)
            self.provider = self._session.get_providers()[0]
        self.labels = list(self.meta["labels"])

    def _scores(self, text: str) -> Any:
        import numpy as np

        with self._lock:
            if self.meta["runtime"] == "sklearn":
                return self._pipe.predict_proba([text])[0]
            from .tokenize import encode

            ids, mask = encode(text, int(self.meta["max_tokens"]), int(self.meta["vocab"]))
            (logits,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
        z = logits[0].astype(np.float64)
        e = np.exp(z - z.max())
        return e / e.sum()

    def _warm(self) -> None:
        self._scores("warm up")

    def predict(self, request: Request) -> dict[str, Any]:
        if request.text is None:
            raise BadInput(415, f"target {self.name!r} takes text, not an image")
        t0 = time.perf_counter()
        p = self._scores(request.text)
        t1 = time.perf_counter()
        best = int(p.argmax())
        return {"target": self.name, "label": self.labels[best], "score": float(p[best]),
                "timings_ms": {"decode": 0.0, "inference": _ms(t0, t1), "postprocess": 0.0}}


_CORES: dict[str, type[Core]] = {"classify": ClassifyCore, "detect": DetectCore,
                                 "text": TextCore}


class ModelSource:
    """A model in S3-compatible object storage: ``SERVEBENCH_MODEL_URL=s3://bucket/key`` (its
    metadata at ``key`` with a ``.json`` suffix). The endpoint comes from boto3's own settings
    (``AWS_ENDPOINT_URL_S3`` for a local S3 such as moto's server)."""

    def __init__(self, url: str, meta: dict[str, Any]) -> None:
        if not url.startswith("s3://") or "/" not in url[5:]:
            raise ValueError(f"SERVEBENCH_MODEL_URL must be s3://bucket/key, not {url!r}")
        self.bucket, self.key = url[5:].split("/", 1)
        self.meta = meta
        self.seconds = 0.0
        self._client: Any = None

    @classmethod
    def from_env(cls) -> ModelSource | None:
        url = os.environ.get("SERVEBENCH_MODEL_URL")
        if not url:
            return None
        meta = json.loads(os.environ.get("SERVEBENCH_MODEL_META") or "{}")
        return cls(url, meta)

    def prepare(self) -> None:
        """Import the storage client (study 004: import it first, then overlap the rest)."""
        import boto3

        self._client = boto3.client("s3")

    def download(self) -> Path:
        import tempfile

        started = time.perf_counter()
        dest = Path(tempfile.gettempdir()) / "servebench-model" / Path(self.key).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._client.download_file(self.bucket, self.key, str(dest))
        self.seconds = time.perf_counter() - started
        return dest


def artifact_for(name: str) -> tuple[Path, dict[str, Any]]:
    """The model file for target ``name``: ``$SERVEBENCH_MODEL_PATH`` (a function package or
    image sets it), else the build cache (building it needs torch)."""
    from ..registry import get

    source = ModelSource.from_env()
    if source is not None:  # downloaded during load(); the metadata travels in the environment
        return Path(source.key), source.meta
    explicit = os.environ.get("SERVEBENCH_MODEL_PATH")
    if explicit:
        path = Path(explicit)
        return path, json.loads(path.with_suffix(".json").read_text())
    from ..build import ensure

    spec = get(name)
    art = ensure(spec.model, spec.runtime)
    return art.path, art.meta


def load_core(name: str, *, threads: int | None = None, limits: Limits | None = None,
              slots: int | None = None, parallel: bool | None = None) -> Core:
    from ..registry import get

    started = time.perf_counter()
    spec = get(name)
    path, meta = artifact_for(name)
    core = _CORES[spec.kind](name, path, meta, threads=threads or default_threads(),
                             limits=limits or Limits.from_env(), slots=slots or default_slots())
    core.init_timings["locate_s"] = time.perf_counter() - started
    if parallel is None:
        parallel = os.environ.get("SERVEBENCH_PARALLEL_INIT", "") not in ("", "0", "false")
    return core.load(parallel=parallel, source=ModelSource.from_env())
