"""MobileNetV4 conv_small, defined here in plain torch (random weights).

Why not timm: timm imports torchvision, whose PyPI build is CUDA-only and fails beside
the CPU torch used here (see NOTES.md). Latency is what the bridge needs from the model,
so the architecture follows timm's ``mobilenetv4_conv_small`` block for block (stem 32,
stages of ConvBnAct / UniversalInvertedResidual, 960 -> 1280 head, 1000 classes;
3.77 M parameters, 0.19 GMACs at 224x224) and the weights stay random.
"""

from __future__ import annotations

import torch
from torch import nn

# (kind, repeats, start_dw_k, mid_dw_k, stride, expansion, out_channels) per block row,
# transcribed from timm's `_gen_mobilenet_v4('small')` arch_def strings.
ARCH: list[list[tuple[str, int, int, int, int, float, int]]] = [
    [("cn", 1, 0, 3, 2, 1, 32), ("cn", 1, 0, 1, 1, 1, 32)],
    [("cn", 1, 0, 3, 2, 1, 96), ("cn", 1, 0, 1, 1, 1, 64)],
    [("uir", 1, 5, 5, 2, 3, 96), ("uir", 4, 0, 3, 1, 2, 96), ("uir", 1, 3, 0, 1, 4, 96)],
    [
        ("uir", 1, 3, 3, 2, 6, 128),
        ("uir", 1, 5, 5, 1, 4, 128),
        ("uir", 1, 0, 5, 1, 4, 128),
        ("uir", 1, 0, 5, 1, 3, 128),
        ("uir", 2, 0, 3, 1, 4, 128),
    ],
    [("cn", 1, 0, 1, 1, 1, 960)],
]


def _div8(v: float) -> int:
    """timm's make_divisible(v, 8): round to a multiple of 8, never below 90 %."""
    n = max(8, int(v + 4) // 8 * 8)
    return n + 8 if n < 0.9 * v else n


def _cba(
    cin: int, cout: int, k: int, s: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UIR(nn.Module):
    """Universal Inverted Bottleneck: [start dw] -> 1x1 expand -> [mid dw] -> 1x1 project."""

    def __init__(self, cin: int, cout: int, start_k: int, mid_k: int, stride: int, exp: float):
        super().__init__()
        mid = _div8(cin * exp)
        self.start = (
            _cba(cin, cin, start_k, stride if not mid_k else 1, cin, act=False)
            if start_k
            else nn.Identity()
        )
        self.expand = _cba(cin, mid, 1)
        self.mid = _cba(mid, mid, mid_k, stride, mid) if mid_k else nn.Identity()
        self.project = _cba(mid, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.mid(self.expand(self.start(x))))
        return x + y if self.residual else y


class MobileNetV4ConvSmall(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        blocks: list[nn.Module] = [_cba(3, 32, 3, 2)]
        cin = 32
        for stage in ARCH:
            for kind, reps, a, k, s, e, cout in stage:
                for r in range(reps):
                    stride = s if r == 0 else 1
                    if kind == "cn":
                        blocks.append(_cba(cin, cout, k, stride))
                    else:
                        blocks.append(UIR(cin, cout, a, k, stride, e))
                    cin = cout
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(
            nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU(inplace=True)
        )
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.pool(self.features(x))).flatten(1))
