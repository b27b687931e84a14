"""The targets: one name each, the model it serves, its runtime and its request kind."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TargetSpec:
    name: str
    model: str  # a key of targets.build.MODELS
    runtime: str  # "onnx", "torch" or "sklearn"
    kind: str  # "classify", "detect" or "text"
    description: str

    @property
    def runtime_requirements(self) -> tuple[str, ...]:
        """Distributions the function package needs besides our code."""
        return {"onnx": ("onnxruntime", "numpy", "pillow"),
                "torch": ("torch", "numpy", "pillow"),
                "sklearn": ("scikit-learn", "numpy")}[self.runtime]


TARGETS: dict[str, TargetSpec] = {t.name: t for t in (
    TargetSpec("mobilenet_v2", "mobilenet_v2", "onnx", "classify",
               "MobileNetV2 image classifier, 224x224, ONNX Runtime (studies 000, 003, 004)"),
    TargetSpec("mobilenet_v2_torch", "mobilenet_v2", "torch", "classify",
               "the same MobileNetV2 on the torch runtime (study 004's runtime comparison)"),
    TargetSpec("ssdlite_mobilenet_v2", "ssdlite_mobilenet_v2", "onnx", "detect",
               "SSDlite detector on MobileNetV2, 320x320, box decoding + NMS (study 001)"),
    TargetSpec("ssd_resnet50", "ssd_resnet50", "onnx", "detect",
               "heavy SSD detector on ResNet-50, 320x320 (studies 001, 002 heavy model)"),
    TargetSpec("albert_base", "albert_base", "onnx", "text",
               "ALBERT-base text classifier, 128 tokens (study 004)"),
    TargetSpec("text_rf", "text_rf", "sklearn", "text",
               "TF-IDF + random forest text classifier (study 002's light model)"),
)}


def get(name: str) -> TargetSpec:
    try:
        return TARGETS[name]
    except KeyError:
        raise LookupError(f"unknown target {name!r}; targets: {', '.join(TARGETS)}") from None
