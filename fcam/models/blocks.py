"""Building blocks of ResNet50, VGG16 and InceptionV3, written for fcam without torchvision.

fcam builds its three WSOL encoders (:mod:`fcam.models.backbones`) from these blocks instead of
importing torchvision, whose import alone costs every pipeline job ~1.8 s of CPU. The architecture
facts follow torchvision 0.29 (``torchvision/models/resnet.py``, ``vgg.py``, ``inception.py``),
which implements He et al. 2016 (ResNet "v1.5": a bottleneck's stride is on its 3x3 conv),
Simonyan & Zisserman 2015 (VGG configuration "D") and Szegedy et al. 2016 (Inception-v3):

- the module tree and every attribute name are torchvision's, so the state-dict keys, their order
  and the tensor shapes are torchvision's and its ImageNet ``*.pth`` files load key for key;
- the forward passes use the same operations in the same order (in-place ReLUs included), so with
  the same weights the outputs are bitwise those of torchvision's modules;
- the modules are constructed in torchvision's order, so PyTorch's default initialisation draws the
  same random numbers; the encoders then apply the same re-initialisation as before
  (:mod:`fcam.models.backbones`).

Only what fcam uses is here: the ResNet bottleneck and its stages, VGG's ``features`` layout, and
Inception's ``BasicConv2d`` and blocks A, B and C (Mixed_5b .. Mixed_6e; fcam drops Mixed_7*).
``tests/unit/models/test_torchvision_parity.py`` checks all of this against torchvision itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "VGG16_CFG",
    "BasicConv2d",
    "Bottleneck",
    "InceptionA",
    "InceptionB",
    "InceptionC",
    "make_resnet_stage",
    "make_vgg_layers",
    "scaled",
]

#: VGG16 (configuration "D"): output channels of the 3x3 convs, "M" for a 2x2 max-pool.
VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip


def scaled(channels: int, width: float) -> int:
    """``channels`` of a layer in a network ``width`` times as wide (at least 1; exact at width 1)."""
    return channels if width == 1.0 else max(1, round(channels * width))


# --- ResNet50 ---------------------------------------------------------------------------------


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1 (width) -> 3x3 (width, ``stride``) -> 1x1 (4 x width), plus shortcut.

    ``relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x))`` with
    ``shortcut = downsample`` (1x1 conv + BN) when given, else the identity. Convs have no bias;
    the stride sits on the 3x3 conv (torchvision's "ResNet v1.5"). One ``relu`` module, in place,
    is shared by the three activations, as in torchvision.

    Args:
        inplanes: input channels.
        planes: width of the bottleneck; the block outputs ``4 * planes`` channels.
        stride: stride of the 3x3 conv (1 or 2).
        downsample: the projection shortcut, or None for the identity.
    """

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        """(B, inplanes, h, w) -> (B, 4 * planes, ceil(h / stride), ceil(w / stride))."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        out += identity
        return self.relu(out)


def make_resnet_stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """A ResNet stage ("layer1" .. "layer4"): ``blocks`` bottlenecks, the first with ``stride``.

    The first block gets a projection shortcut ``downsample = Sequential(conv1x1(inplanes,
    4 * planes, stride), BatchNorm2d)`` when it changes the stride or the channels (always in
    ResNet50). The shortcut is constructed before the block, as in torchvision (the order matters
    for which random numbers the default initialisation draws).

    Args:
        inplanes: input channels of the stage.
        planes: bottleneck width; the stage outputs ``4 * planes`` channels.
        blocks: number of bottlenecks (3, 4, 6, 3 in ResNet50).
        stride: stride of the first bottleneck's 3x3 conv and of its shortcut.

    Returns:
        ``nn.Sequential`` of the bottlenecks, children named "0", "1", ...
    """
    outplanes = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or inplanes != outplanes:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, outplanes, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(outplanes),
        )
    layers = [Bottleneck(inplanes, planes, stride, downsample)]
    layers += [Bottleneck(outplanes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


# --- VGG16 ------------------------------------------------------------------------------------


def make_vgg_layers(cfg: tuple[int | str, ...], width: float = 1.0) -> nn.Sequential:
    """VGG's ``features``: each int c adds ``Conv2d(prev, c, 3, padding=1)`` and an in-place ReLU,
    each "M" a ``MaxPool2d(2, 2)`` (no batch norm). Children are numbered "0", "1", ... in that
    order, so for :data:`VGG16_CFG` the names and keys are torchvision's ``vgg16().features``.

    Args:
        cfg: channels and "M"s, e.g. :data:`VGG16_CFG`; the input has 3 channels.
        width: channel multiplier (1: torchvision's layers).

    Returns:
        The ``nn.Sequential``.
    """
    layers: list[nn.Module] = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            assert isinstance(v, int), f"VGG cfg entries are ints or 'M', got {v!r}"
            out = scaled(v, width)
            layers += [nn.Conv2d(in_channels, out, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = out
    return nn.Sequential(*layers)


# --- InceptionV3 ------------------------------------------------------------------------------


class BasicConv2d(nn.Module):
    """Inception's conv unit: ``relu(bn(conv(x)))``, conv without bias, BN with eps 0.001.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: int or (kh, kw).
        stride: int or pair.
        padding: int or pair.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=padding, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, h, w) -> (B, out_channels, h', w')."""
        return F.relu(self.bn(self.conv(x)), inplace=True)


class InceptionA(nn.Module):
    """Inception block with 5x5 and double-3x3 branches (Mixed_5b, 5c, 5d); keeps the size.

    Output channels, concatenated in this order: 64 (1x1), 64 (1x1 48 -> 5x5), 96 (1x1 64 ->
    3x3 96 -> 3x3 96), ``pool_features`` (3x3 average pool, stride 1, pad 1, then 1x1).

    Args:
        in_channels: input channels.
        pool_features: output channels of the pooling branch.
        width: multiplier of the other branches' channels (1: torchvision's block).
    """

    def __init__(self, in_channels: int, pool_features: int, width: float = 1.0) -> None:
        super().__init__()
        c48, c64, c96 = (scaled(c, width) for c in (48, 64, 96))
        self.branch1x1 = BasicConv2d(in_channels, c64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, c48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(c48, c64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, c64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(c64, c96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(c96, c96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)
        self.out_channels = 2 * c64 + c96 + pool_features

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, h, w) -> (B, 224 + pool_features, h, w)."""
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)


class InceptionB(nn.Module):
    """Inception grid-reduction block (Mixed_6a): 384 (3x3) + 96 (1x1 64 -> 3x3 96 -> 3x3 96) +
    the input's channels (3x3 max-pool), concatenated in this order.

    With ``stride=2`` this is the standard block (torchvision's): the 3x3 ``branch3x3``,
    ``branch3x3dbl_3`` and the max-pool have stride 2 and no padding, ``h -> floor((h - 3) / 2) + 1``.
    With ``stride=1`` (Choe et al.'s WSOL InceptionV3, wsolevaluation ``wsol/inception.py``) they
    have stride 1 and padding 1 and the block keeps the size. Same parameters either way.

    Args:
        in_channels: input channels.
        stride: 2 (reduce) or 1 (keep the size).
        width: channel multiplier of the convs (1: torchvision's block).
    """

    def __init__(self, in_channels: int, stride: int = 2, width: float = 1.0) -> None:
        super().__init__()
        assert stride in (1, 2), f"InceptionB stride must be 1 or 2, got {stride!r}"
        self.stride = stride
        pad = 1 if stride == 1 else 0
        c64, c96, c384 = (scaled(c, width) for c in (64, 96, 384))
        self.branch3x3 = BasicConv2d(in_channels, c384, kernel_size=3, stride=stride, padding=pad)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, c64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(c64, c96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(c96, c96, kernel_size=3, stride=stride, padding=pad)
        self.out_channels = c384 + c96 + in_channels

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, h, w) -> (B, 480 + in_channels, h', w'), h' as in the class docstring."""
        branch3x3 = self.branch3x3(x)
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pad = 1 if self.stride == 1 else 0
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=self.stride, padding=pad)
        return torch.cat([branch3x3, branch3x3dbl, branch_pool], 1)


class InceptionC(nn.Module):
    """Inception block with factorised 7x7 convs (Mixed_6b .. 6e); keeps the size, 768 channels.

    Four branches of 192 channels each, concatenated in this order: 1x1; 1x1 c7 -> 1x7 c7 ->
    7x1 192; 1x1 c7 -> 7x1 c7 -> 1x7 c7 -> 7x1 c7 -> 1x7 192; 3x3 average pool (stride 1,
    pad 1) -> 1x1. Every 1x7 / 7x1 conv is padded to keep the size.

    Args:
        in_channels: input channels.
        channels_7x7: c7, the width of the 7x7 branches (128, 160, 160, 192 in Mixed_6b .. 6e).
        width: multiplier of the branches' 192 output channels (1: torchvision's block).
    """

    def __init__(self, in_channels: int, channels_7x7: int, width: float = 1.0) -> None:
        super().__init__()
        c7, c192 = channels_7x7, scaled(192, width)
        self.branch1x1 = BasicConv2d(in_channels, c192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, c192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, c192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, c192, kernel_size=1)
        self.out_channels = 4 * c192

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, h, w) -> (B, 768, h, w)."""
        branch1x1 = self.branch1x1(x)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = self.branch7x7dbl_1(x)
        branch7x7dbl = self.branch7x7dbl_3(self.branch7x7dbl_2(branch7x7dbl))
        branch7x7dbl = self.branch7x7dbl_5(self.branch7x7dbl_4(branch7x7dbl))
        branch_pool = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([branch1x1, branch7x7, branch7x7dbl, branch_pool], 1)
