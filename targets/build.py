"""Build the targets' model artifacts offline and cache them by content hash.

The key of an artifact is a SHA-256 over the model code (``targets/models/*.py``), this file, the
training corpus where there is one, the artifact kind and the exporting library's version: a
second build with nothing changed is a file lookup. Artifacts are written to a temporary name and
renamed, under a file lock, so concurrent builds (pytest-xdist workers) never see half a file.

Cache folder: ``$SERVEBENCH_CACHE/models`` or ``~/.cache/servebench/models``.
Torch and scikit-learn are imported here only, never by the serving core of an ONNX target.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "data" / "text_corpus.tsv"
SEED = 0


@dataclass(frozen=True)
class Artifact:
    """A built model: its file, its metadata and whether this call had to build it."""

    model: str
    runtime: str
    path: Path
    meta: dict[str, Any]
    built: bool
    seconds: float

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


@dataclass(frozen=True)
class ModelSpec:
    name: str
    make: Callable[[], Any]  # builds the torch module (or the sklearn pipeline)
    example: Callable[[], tuple[Any, ...]]  # example inputs for the export
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    meta: dict[str, Any]


def cache_dir() -> Path:
    root = os.environ.get("SERVEBENCH_CACHE") or str(Path.home() / ".cache" / "servebench")
    return Path(root) / "models"


def _image_model(name: str, size: int, factory: str, meta: dict[str, Any]) -> ModelSpec:
    def make() -> Any:
        import importlib

        module, attr = factory.rsplit(":", 1)
        return getattr(importlib.import_module(module), attr)()

    def example() -> tuple[Any, ...]:
        import torch

        return (torch.zeros(1, 3, size, size),)

    return ModelSpec(name, make, example, ("input",), meta.pop("outputs"),
                     {"input_size": size, **meta})


def _albert_example() -> tuple[Any, ...]:
    import torch

    return (torch.ones(1, 128, dtype=torch.long), torch.ones(1, 128, dtype=torch.long))


def _albert() -> Any:
    from .models.albert import AlbertClassifier

    return AlbertClassifier()


MODELS: dict[str, ModelSpec] = {m.name: m for m in (
    _image_model("mobilenet_v2", 224, "targets.models.mobilenet_v2:MobileNetV2",
                 {"outputs": ("logits",), "classes": 1000}),
    _image_model("ssdlite_mobilenet_v2", 320, "targets.models.ssd:SSDLiteMobileNetV2",
                 {"outputs": ("boxes", "scores"), "classes": 91, "feature_maps": [20, 10, 5, 3,
                  2, 1], "anchors_per_location": 6, "nms_iou": 0.55}),
    _image_model("ssd_resnet50", 320, "targets.models.ssd:SSDResNet50",
                 {"outputs": ("boxes", "scores"), "classes": 91, "feature_maps": [20, 10, 5, 3,
                  2], "anchors_per_location": 6, "nms_iou": 0.5}),
    ModelSpec("albert_base", _albert, _albert_example, ("input_ids", "attention_mask"),
              ("logits",), {"max_tokens": 128, "labels": ["negative", "positive"],
                            "vocab": 30000}),
)}
SKLEARN_MODELS = ("text_rf",)


def _digest(model: str, runtime: str) -> str:
    h = hashlib.sha256()
    for path in [*sorted((HERE / "models").glob("*.py")), Path(__file__)]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    # Versions from the installed metadata: no import of torch at serving time.
    if runtime == "sklearn":
        h.update(CORPUS.read_bytes())
        h.update(metadata.version("scikit-learn").encode())
    else:
        h.update(metadata.version("torch").encode())
    h.update(f"{model}:{runtime}:{SEED}".encode())
    return h.hexdigest()[:16]


def _suffix(runtime: str) -> str:
    return {"onnx": ".onnx", "torch": ".pt", "sklearn": ".joblib"}[runtime]


def ensure(model: str, runtime: str = "onnx") -> Artifact:
    """The artifact for ``model`` on ``runtime``, built if the cache lacks it."""
    if model not in MODELS and model not in SKLEARN_MODELS:
        known = ", ".join([*MODELS, *SKLEARN_MODELS])
        raise LookupError(f"unknown model {model!r}; models: {known}")
    from filelock import FileLock

    started = time.perf_counter()
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{model}-{runtime}-{_digest(model, runtime)}"
    path, meta_path = folder / (stem + _suffix(runtime)), folder / (stem + ".json")
    with FileLock(str(folder / (stem + ".lock")), timeout=1800):
        built = not (path.exists() and meta_path.exists())
        if built:
            meta = _build(model, runtime, path)
            tmp = meta_path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(meta, indent=1))
            tmp.replace(meta_path)
        meta = json.loads(meta_path.read_text())
    return Artifact(model, runtime, path, meta, built, time.perf_counter() - started)


def _build(model: str, runtime: str, path: Path) -> dict[str, Any]:
    tmp = path.with_name(path.name + ".tmp")
    if runtime == "sklearn":
        meta = _train_text_rf(tmp)
    else:
        import torch

        spec = MODELS[model]
        torch.manual_seed(SEED)
        net = spec.make().eval()
        meta = dict(spec.meta)
        meta["parameters"] = sum(p.numel() for p in net.parameters())
        if runtime == "onnx":
            _export_onnx(net, spec, tmp)
        elif runtime == "torch":
            torch.save(net.state_dict(), tmp)
        else:
            raise ValueError(f"unknown runtime {runtime!r}")
    tmp.replace(path)
    meta.update(model=model, runtime=runtime, seed=SEED, file=path.name)
    return meta


def _export_onnx(net: Any, spec: ModelSpec, out: Path) -> None:
    import warnings

    import torch

    dynamic = {name: {0: "batch"} for name in (*spec.inputs, *spec.outputs)}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        # The TorchScript-based exporter writes one self-contained file (weights inline),
        # which is what a function package wants.
        torch.onnx.export(net, spec.example(), str(out), dynamo=False, opset_version=17,
                          input_names=list(spec.inputs), output_names=list(spec.outputs),
                          dynamic_axes=dynamic)


def _train_text_rf(out: Path) -> dict[str, Any]:
    import joblib
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    texts, labels = read_corpus()
    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                         RandomForestClassifier(n_estimators=100, random_state=SEED, n_jobs=1))
    pipe.fit(texts, labels)
    with open(out, "wb") as f:
        joblib.dump(pipe, f)
    return {"labels": sorted(set(labels)), "training_samples": len(texts),
            "training_accuracy": float(pipe.score(texts, labels))}


def read_corpus() -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            label, text = line.split("\t", 1)
            labels.append(label)
            texts.append(text)
    return texts, labels


def main(argv: list[str] | None = None) -> int:
    """``python -m targets.build [MODEL ...]``: build (or find) artifacts and print them."""
    import sys

    from .registry import TARGETS

    names = (argv if argv is not None else sys.argv[1:]) or list(TARGETS)
    from .registry import get

    for name in names:
        spec = get(name)
        art = ensure(spec.model, spec.runtime)
        state = "built" if art.built else "cached"
        print(f"{name:<22} {state:<6} {art.seconds:7.2f} s  {art.size_bytes / 1e6:7.1f} MB  "
              f"{art.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
