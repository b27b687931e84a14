"""Single-shot detectors: SSDlite on a MobileNetV2 backbone (Sandler et al., 2018, section 6.2)
and a heavy SSD on a ResNet-50 backbone (the studies' "heavy model": 25M+ parameters).

The network outputs raw box offsets and class logits for every default box; box decoding and
non-maximum suppression run at serving time (``targets/core/detect.py``) as the real models do.
Default boxes: 6 per location (aspect ratios 1, 2, 1/2, 3, 1/3 and one larger square), as SSD.
"""

from __future__ import annotations

import torch
from torch import nn

from .mobilenet_v2 import ConvBNReLU, InvertedResidual, MobileNetV2Features
from .resnet import ResNet50Backbone

ANCHORS_PER_LOCATION = 6
NUM_CLASSES = 91  # COCO's 90 categories plus background, as the TF object detection zoo


def _separable(cin: int, cout: int) -> nn.Sequential:
    """SSDlite's head: a 3x3 depthwise conv then a 1x1 projection."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
        nn.ReLU6(inplace=True), nn.Conv2d(cin, cout, 1))


class SSDHead(nn.Module):
    def __init__(self, channels: list[int], num_classes: int, lite: bool) -> None:
        super().__init__()
        a = ANCHORS_PER_LOCATION
        make = _separable if lite else (lambda cin, cout: nn.Conv2d(cin, cout, 3, 1, 1))
        self.loc = nn.ModuleList(make(c, a * 4) for c in channels)
        self.conf = nn.ModuleList(make(c, a * num_classes) for c in channels)
        self.num_classes = num_classes

    @staticmethod
    def _last(m: nn.Module) -> nn.Conv2d:
        conv = m[-1] if isinstance(m, nn.Sequential) else m
        assert isinstance(conv, nn.Conv2d)
        return conv

    @torch.no_grad()
    def calibrate(self, maps: list[torch.Tensor], background_bias: float = 10.0) -> None:
        """Give random weights the output statistics of a trained detector: class logits with
        a spread of 2 and a background prior (a few hundred candidates above the 0.01 score
        threshold, a handful above 0.3), box offsets with a spread of 1. Without this, random
        weights give near-constant logits and post-processing degenerates."""
        for x, loc, conf in zip(maps, self.loc, self.conf, strict=True):
            for head, target in ((loc, 1.0), (conf, 2.0)):
                last = self._last(head)
                assert last.bias is not None
                last.bias.zero_()
                last.weight.mul_(target / max(float(head(x).std()), 1e-12))
            conf_bias = self._last(conf).bias
            assert conf_bias is not None
            bias = conf_bias.view(ANCHORS_PER_LOCATION, self.num_classes)
            bias[:, 0] = background_bias

    def forward(self, maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        locs, confs = [], []
        for x, loc, conf in zip(maps, self.loc, self.conf, strict=True):
            n = x.shape[0]
            locs.append(loc(x).permute(0, 2, 3, 1).reshape(n, -1, 4))
            confs.append(conf(x).permute(0, 2, 3, 1).reshape(n, -1, self.num_classes))
        return torch.cat(locs, 1), torch.cat(confs, 1)


def _extra(cin: int, cout: int, lite: bool) -> nn.Module:
    """One extra feature map at half the resolution: 1x1 reduce, then a stride-2 3x3."""
    mid = cout // 2
    if lite:
        return nn.Sequential(ConvBNReLU(cin, mid, kernel=1),
                             ConvBNReLU(mid, mid, stride=2, groups=mid),
                             ConvBNReLU(mid, cout, kernel=1))
    return nn.Sequential(nn.Conv2d(cin, mid, 1), nn.ReLU(inplace=True),
                         nn.Conv2d(mid, cout, 3, 2, 1), nn.ReLU(inplace=True))


class SSDLiteMobileNetV2(nn.Module):
    """Feature maps at strides 16 and 32 from the backbone plus four extras (512, 256, 256, 128)."""

    extra_channels = (512, 256, 256, 128)

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        feats = list(MobileNetV2Features().children())
        last_channels = 1280
        # Split inside block 13 (the first 160-channel block): its expansion output (576
        # channels, stride 16) is the first detection map, as in the paper.
        block13 = feats[14]
        assert isinstance(block13, InvertedResidual)
        self.stage1 = nn.Sequential(*feats[:14], block13.conv[0])
        self.stage2 = nn.Sequential(block13.conv[1:], *feats[15:])
        channels = [576, last_channels]
        extras, cin = [], last_channels
        for c in self.extra_channels:
            extras.append(_extra(cin, c, lite=True))
            cin = c
            channels.append(c)
        self.extras = nn.ModuleList(extras)
        self.head = SSDHead(channels, num_classes, lite=True)
        _calibrate(self, 320)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        c4 = self.stage1(x)
        maps = [c4, self.stage2(c4)]
        for extra in self.extras:
            maps.append(extra(maps[-1]))
        return maps

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.feature_maps(x))


class SSDResNet50(nn.Module):
    """The heavy detector: ResNet-50 C4/C5 maps plus three extras, full 3x3 conv heads."""

    extra_channels = (512, 256, 256)

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.backbone = ResNet50Backbone()
        channels = [1024, 2048]
        extras, cin = [], 2048
        for c in self.extra_channels:
            extras.append(_extra(cin, c, lite=False))
            cin = c
            channels.append(c)
        self.extras = nn.ModuleList(extras)
        self.head = SSDHead(channels, num_classes, lite=False)
        _calibrate(self, 320)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        c4, c5 = self.backbone(x)
        maps = [c4, c5]
        for extra in self.extras:
            maps.append(extra(maps[-1]))
        return maps

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.feature_maps(x))


def _calibrate(model: SSDLiteMobileNetV2 | SSDResNet50, size: int) -> None:
    """Calibrate the heads on one seeded random image, in eval mode (as served)."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        maps = model.feature_maps(torch.randn(1, 3, size, size, generator=generator))
    model.head.calibrate(maps)
    model.train(was_training)
