"""Parameter counts and output shapes against the published architectures."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import torch as torch_types

torch = pytest.importorskip("torch", reason="models are defined in torch (the [build] extra)")

from targets.models.albert import AlbertClassifier  # noqa: E402 - after the skip
from targets.models.mobilenet_v2 import MobileNetV2  # noqa: E402 - after the skip
from targets.models.resnet import ResNet50  # noqa: E402 - after the skip
from targets.models.ssd import SSDLiteMobileNetV2, SSDResNet50  # noqa: E402 - after the skip


def _params(m: torch_types.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _macs(m: torch_types.nn.Module, x: torch_types.Tensor) -> int:
    """Multiply-adds of the convolutions and linear layers, counted with forward hooks."""
    total = 0

    def conv(mod: torch_types.nn.Conv2d, _inp: object, out: torch_types.Tensor) -> None:
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        total += out.numel() * k

    def linear(mod: torch_types.nn.Linear, _inp: object, out: torch_types.Tensor) -> None:
        nonlocal total
        total += out.numel() * mod.in_features

    hooks = [mod.register_forward_hook(conv if isinstance(mod, torch.nn.Conv2d) else linear)
             for mod in m.modules() if isinstance(mod, torch.nn.Conv2d | torch.nn.Linear)]
    with torch.no_grad():
        m.eval()(x)
    for h in hooks:
        h.remove()
    return total


def test_mobilenet_v2_matches_the_paper() -> None:
    m = MobileNetV2()
    assert _params(m) == 3_504_872  # torchvision's mobilenet_v2, 1,000 classes
    macs = _macs(m, torch.zeros(1, 3, 224, 224))
    assert 290e6 < macs < 320e6  # the paper: 300 M multiply-adds
    assert m.eval()(torch.zeros(2, 3, 224, 224)).shape == (2, 1000)


def test_resnet50_matches_the_paper() -> None:
    m = ResNet50()
    assert _params(m) == 25_557_032
    assert 4.0e9 < _macs(m, torch.zeros(1, 3, 224, 224)) < 4.2e9  # 4.1 G multiply-adds


def test_ssdlite_on_mobilenet_v2() -> None:
    m = SSDLiteMobileNetV2()
    # The paper's Table 6: 4.3 M parameters (its extras are slightly slimmer than ours).
    assert 4.3e6 * 0.9 < _params(m) < 4.3e6 * 1.15
    boxes, scores = m.eval()(torch.zeros(1, 3, 320, 320))
    anchors = 6 * (20 * 20 + 10 * 10 + 5 * 5 + 3 * 3 + 2 * 2 + 1)
    assert boxes.shape == (1, anchors, 4) and scores.shape == (1, anchors, 91)


def test_heavy_detector_has_a_resnet50_class_backbone() -> None:
    m = SSDResNet50()
    assert _params(m.backbone) == 25_557_032 - (2048 * 1000 + 1000)
    assert _params(m) > 25e6
    boxes, scores = m.eval()(torch.zeros(1, 3, 320, 320))
    assert boxes.shape[1] == scores.shape[1] == 6 * (400 + 100 + 25 + 9 + 4)


def test_albert_base_matches_the_published_count() -> None:
    m = AlbertClassifier()
    assert m.encoder_parameters() == 11_683_584  # albert-base-v2 (the paper: 12 M)
    logits = m.eval()(torch.ones(3, 128, dtype=torch.long), torch.ones(3, 128))
    assert logits.shape == (3, 2)


def test_detector_heads_are_calibrated_like_a_trained_model() -> None:
    """Random heads give near-constant logits; calibrated ones give a background prior and
    spread, so post-processing has real candidates to suppress."""
    torch.manual_seed(0)
    with torch.no_grad():
        _, scores = SSDLiteMobileNetV2().eval()(torch.rand(1, 3, 320, 320) * 4 - 2)
    fg = scores[0, :, 1:]
    assert 1.0 < float(fg.std()) < 4.0
    assert float(scores[0, :, 0].mean()) > float(fg.mean()) + 5
