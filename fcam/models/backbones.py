"""WSOL backbones: torchvision ResNet50, VGG16 and InceptionV3 modified per Choe et al. (CVPR 2020).

"Evaluating Weakly Supervised Object Localization Methods Right" (Choe et al., CVPR 2020) fixes the
backbones every WSOL paper, F-CAM included, is compared on (docs/method.md §3): each one is cut or
re-strided so that a 224x224 input gives a 28x28 deep feature map (stride 8), the layer class
activation maps (CAMs) are read from.

Each :class:`Encoder` returns a list of feature maps from shallow to deep. The last one is the deep
map ``(B, C, h, w)``, output of :attr:`Encoder.target_layer`; the shallower ones are exactly the
skip connections the F-CAM U-Net decoder (:mod:`fcam.models.decoder`) concatenates, chosen as in the
authors' code so that the decoder parameter counts of the paper are met. The modules keep
torchvision's attribute names, so torchvision ImageNet state dicts load without key renaming
(:mod:`fcam.models.pretrained`).

Deep map size h for an input side n (ResNet50 and VGG16 give exactly n / 8 when n is a multiple
of 8, hence 224 -> 28, 96 -> 12, 64 -> 8):

- ResNet50: ``ceil(n / 8)`` (three stride-2 stages with "same" padding).
- VGG16: ``floor(n / 8)`` (three 2x2 max-pools).
- InceptionV3 (the F-CAM code's geometry, the default): ``a = ceil(n / 2); b = floor(a / 2) + 1;
  h = floor(b / 2) + 1``, so 224 -> 29 (the paper's published InceptionV3 numbers come from this
  29 x 29 map); with ``geometry="wsolevaluation"``: ``a = ceil(n / 2) - 2; b = ceil((a - 1) / 2)
  - 1; h = ceil((b - 1) / 2) + 1``, exactly n / 8 (see :class:`InceptionV3Encoder`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import ClassVar

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.models import Inception_V3_Weights, ResNet50_Weights, VGG16_Weights, WeightsEnum
from torchvision.models.inception import InceptionB

from fcam.constants import BACKBONES
from fcam.errors import ConfigError
from fcam.models.pretrained import load_imagenet_weights

__all__ = [
    "INCEPTION_GEOMETRIES",
    "PRETRAINED_CHOICES",
    "Encoder",
    "InceptionV3Encoder",
    "ResNet50Encoder",
    "VGG16Encoder",
    "build_encoder",
]

#: Values accepted by ``build_encoder(..., pretrained=...)``.
PRETRAINED_CHOICES = ("none", "imagenet")

#: Stem geometries of :class:`InceptionV3Encoder`: the F-CAM code's (29 x 29 at 224, default) and
#: wsolevaluation's (28 x 28 at 224).
INCEPTION_GEOMETRIES = ("fcam-wsol", "wsolevaluation")


def _init_conv_relu(conv: nn.Conv2d) -> None:
    """He-normal (fan-out) weights and zero bias, torchvision's init for VGG/ResNet convs."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class Encoder(nn.Module):
    """Base class of the WSOL backbones.

    Subclasses set :attr:`out_channels` and implement :meth:`forward`, :attr:`target_layer` and
    :meth:`new_modules`.

    Attributes:
        backbone: name of the backbone, one of :data:`fcam.constants.BACKBONES`.
        imagenet_weights: the torchvision weights whose state dict ``pretrained="imagenet"`` loads.
        dropped_prefixes: state-dict key prefixes of the torchvision model this encoder does not
            have (classifier, auxiliary head, removed stages); loading skips exactly these.
        out_channels: channels of the features :meth:`forward` returns, shallow -> deep.
    """

    backbone: ClassVar[str]
    imagenet_weights: ClassVar[WeightsEnum]
    dropped_prefixes: ClassVar[tuple[str, ...]]
    out_channels: tuple[int, ...]

    @property
    def target_layer(self) -> nn.Module:
        """The module whose forward output is the deep feature map (where CAM hooks go)."""
        raise NotImplementedError

    def new_modules(self) -> list[nn.Module]:
        """Layers that are not in the torchvision model (randomly initialised, not loaded)."""
        return []

    def fast_lr_modules(self) -> list[nn.Module]:
        """Encoder layers trained at 10x the base learning rate in phase 1 (besides the head).

        wsolevaluation (``main.py``, ``Trainer._FEATURE_PARAM_LAYER_PATTERNS`` and
        ``_set_optimizer``) splits parameters by name, not by origin: VGG16 and InceptionV3 train
        their new layers at 10x, ResNet50 trains all of ``layer4`` at 10x although it is
        pretrained. The F-CAM code applies the same rule (fcam-wsol
        ``dlib/process/instantiators.py``, ``_get_model_params_for_opt``). Default: the new layers.
        """
        return self.new_modules()

    def forward(self, x: Tensor) -> list[Tensor]:  # pragma: no cover - overridden
        """Features of ``x``; see the subclasses."""
        raise NotImplementedError


class ResNet50Encoder(Encoder):
    """ResNet50 with layer3 and layer4 at stride 1 (no dilation), as in Choe et al.

    The stride-2 3x3 conv and the stride-2 1x1 downsample conv of the first bottleneck of layer3 and
    of layer4 get stride 1, so the output stride is 8: 28x28x2048 at 224.

    ``forward(x: (B, 3, H, W))`` returns five maps, ``n -> ceil(n / 2^k)``:
    ``[relu after conv1 (B, 64, H/2), layer1 (B, 256, H/4), layer2 (B, 512, H/8),
    layer3 (B, 1024, H/8), layer4 (B, 2048, H/8)]``. The CAM target is layer4, i.e. the output
    of its last bottleneck after the ReLU.
    """

    backbone = "resnet50"
    imagenet_weights = ResNet50_Weights.IMAGENET1K_V1
    dropped_prefixes = ("fc.",)

    def __init__(self) -> None:
        super().__init__()
        net = torchvision.models.resnet50(weights=None)
        for layer in (net.layer3, net.layer4):
            first = layer[0]
            first.conv2.stride = (1, 1)
            first.downsample[0].stride = (1, 1)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.out_channels = (64, 256, 512, 1024, 2048)

    @property
    def target_layer(self) -> nn.Module:
        """layer4 (output of its last bottleneck, after the ReLU)."""
        return self.layer4

    def fast_lr_modules(self) -> list[nn.Module]:
        """All of layer4 (pretrained, 14.96M parameters): wsolevaluation's ``'resnet':
        ['layer4.', 'fc.']`` patterns select the 10x group for ResNet, not the 1x group."""
        return [self.layer4]

    def forward(self, x: Tensor) -> list[Tensor]:
        """Args: x: (B, 3, H, W) float32, ImageNet-normalised. Returns: the five maps above."""
        f0 = self.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(self.maxpool(f0))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [f0, f1, f2, f3, f4]


class VGG16Encoder(Encoder):
    """VGG16 without pool4, pool5 and the FC layers, plus conv6 (512 -> 1024, 3x3, pad 1) + ReLU.

    Output stride 8 (three 2x2 pools): 28x28x1024 at 224, ``floor(n / 8)`` in general.
    ``self.features`` keeps torchvision's child names ("0", "1", ..., with "23" = pool4 and
    "30" = pool5 removed), so torchvision's ``features.*`` keys load unchanged.

    ``forward(x: (B, 3, H, W))`` returns ``[relu2_2 (B, 128, H/2), relu3_3 (B, 256, H/4),
    ReLU after conv6 (B, 1024, H/8)]``. conv1 (full resolution) is not a skip: the decoder has
    only three upsampling blocks, the last without skip (authors' code).
    """

    backbone = "vgg16"
    imagenet_weights = VGG16_Weights.IMAGENET1K_V1
    dropped_prefixes = ("classifier.",)
    _removed_pools = ("23", "30")  # pool4, pool5 in torchvision's vgg16().features
    _taps = ("8", "15")  # ReLUs after conv2_2 and conv3_3

    def __init__(self) -> None:
        super().__init__()
        # make_layers builds only torchvision's vgg16().features; vgg16() itself would also allocate
        # (and initialise, ~2 s) the 120M-parameter FC classifier that is thrown away.
        full = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"], batch_norm=False)
        kept = [(name, m) for name, m in full.named_children() if name not in self._removed_pools]
        self.features = nn.Sequential(OrderedDict(kept))
        self.conv6 = nn.Conv2d(512, 1024, kernel_size=3, padding=1)
        # Not in place: CAM backward hooks on the target layer must not see their input overwritten.
        self.relu6 = nn.ReLU(inplace=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                _init_conv_relu(m)
        self.out_channels = (128, 256, 1024)

    @property
    def target_layer(self) -> nn.Module:
        """The ReLU after conv6."""
        return self.relu6

    def new_modules(self) -> list[nn.Module]:
        """conv6 (the ReLU has no parameters)."""
        return [self.conv6]

    def forward(self, x: Tensor) -> list[Tensor]:
        """Args: x: (B, 3, H, W) float32, ImageNet-normalised. Returns: the three maps above."""
        feats = []
        for name, module in self.features.named_children():
            x = module(x)
            if name in self._taps:
                feats.append(x)
        feats.append(self.relu6(self.conv6(x)))
        return feats


class _InceptionBStride1(nn.Module):
    """torchvision's InceptionB (Mixed_6a) with its stride-2 reductions turned into stride 1.

    Both 3x3 stride-2 convs become stride 1 with padding 1 and the max-pool branch becomes
    ``max_pool2d(3, stride=1, padding=1)``, so the block keeps the spatial size (Choe et al.).
    torchvision hard-codes the pool stride in ``InceptionB._forward``, hence this wrapper; it takes
    over the block's children under the same names so that ``Mixed_6a.*`` keys are unchanged.
    """

    def __init__(self, block: InceptionB) -> None:
        super().__init__()
        self.branch3x3 = block.branch3x3
        self.branch3x3dbl_1 = block.branch3x3dbl_1
        self.branch3x3dbl_2 = block.branch3x3dbl_2
        self.branch3x3dbl_3 = block.branch3x3dbl_3
        for conv_block in (self.branch3x3, self.branch3x3dbl_3):
            conv_block.conv.stride = (1, 1)
            conv_block.conv.padding = (1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 288, h, w) -> (B, 768, h, w)."""
        branch3x3 = self.branch3x3(x)
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([branch3x3, branch3x3dbl, branch_pool], dim=1)


class InceptionV3Encoder(Encoder):
    """InceptionV3 up to Mixed_6e with Mixed_6a at stride 1, plus two 3x3 convs to 1024 channels.

    Built from ``torchvision.models.inception_v3(weights=None, aux_logits=False,
    init_weights=False)`` (``transform_input`` False: inputs use ImageNet mean/std like the other
    backbones). Mixed_7*, the auxiliary head and the FC layer are dropped. Added ("new") layers:
    ``extra = [Dropout(0.5), Conv(768->1024, 3x3, pad 1), ReLU, Dropout(0.5),
    Conv(1024->1024, 3x3, pad 1), ReLU]``; the CAM target is the last ReLU. Both stem max-pools
    are ``MaxPool2d(3, stride 2, padding 1, ceil_mode=True)`` and Conv2d_1a gets padding 1.

    Geometry (``geometry``):

    - ``"fcam-wsol"`` (default): the F-CAM code's encoder (fcam-wsol
      ``dlib/encoders/inceptionv3.py``, ``InceptionV3Encoder.__init__``) sets padding 1 on *every*
      3x3 conv, so Conv2d_2a and Conv2d_4a also get padding 1: 224 -> 112 -> 112 -> 57 -> 57 ->
      29, a 29 x 29 deep map. The paper's InceptionV3 numbers (baselines and F-CAM) were produced
      by that code, so fcam follows it (docs/fidelity.md).
    - ``"wsolevaluation"``: Choe et al.'s ``InceptionCam`` with ``large_feature_map``: Conv2d_2a
      and Conv2d_4a keep torchvision's padding 0, so the pretrained 3x3 filters see no extra
      zero border: 224 -> 112 -> 110 -> 56 -> 54 -> 28.

    ``forward(x: (B, 3, H, W))`` returns the F-CAM code's stages (``stage_idxs = (3, 5, 9, 15)``
    over its ``features`` sequence): ``[Conv2d_2b (B, 64, 112), Conv2d_3b (B, 80, 57),
    Mixed_5c (B, 288, 29), Mixed_6e (B, 768, 29), extra (B, 1024, 29)]`` (sizes at H = 224 with
    the default geometry; 110, 56, 28, 28, 28 with wsolevaluation's). The 288-channel skip is the
    output of Mixed_5c, not Mixed_5d: the authors' third stage ends after Mixed_5c. The decoder
    resizes its upsampled maps to each skip's size.

    Args:
        geometry: one of :data:`INCEPTION_GEOMETRIES`.

    Raises:
        ConfigError: unknown ``geometry``.
    """

    backbone = "inceptionv3"
    imagenet_weights = Inception_V3_Weights.IMAGENET1K_V1
    dropped_prefixes = ("AuxLogits.", "Mixed_7", "fc.")

    def __init__(self, geometry: str = "fcam-wsol") -> None:
        super().__init__()
        if geometry not in INCEPTION_GEOMETRIES:
            choices = ", ".join(INCEPTION_GEOMETRIES)
            raise ConfigError(f"unknown InceptionV3 geometry {geometry!r}; expected one of {choices}")
        self.geometry = geometry
        net = torchvision.models.inception_v3(
            weights=None, aux_logits=False, init_weights=False, transform_input=False
        )
        net.Conv2d_1a_3x3.conv.padding = (1, 1)
        if geometry == "fcam-wsol":
            net.Conv2d_2a_3x3.conv.padding = (1, 1)
            net.Conv2d_4a_3x3.conv.padding = (1, 1)
        self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3 = (
            net.Conv2d_1a_3x3,
            net.Conv2d_2a_3x3,
            net.Conv2d_2b_3x3,
        )
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True)
        self.Conv2d_3b_1x1, self.Conv2d_4a_3x3 = net.Conv2d_3b_1x1, net.Conv2d_4a_3x3
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = net.Mixed_5b, net.Mixed_5c, net.Mixed_5d
        self.Mixed_6a = _InceptionBStride1(net.Mixed_6a)
        self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e = (
            net.Mixed_6b,
            net.Mixed_6c,
            net.Mixed_6d,
            net.Mixed_6e,
        )
        self.extra = nn.Sequential(
            nn.Dropout(0.5),
            nn.Conv2d(768, 1024, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Conv2d(1024, 1024, kernel_size=3, padding=1),
            nn.ReLU(inplace=False),  # the CAM target: not in place (see VGG16Encoder.relu6)
        )
        for m in self.extra.modules():
            if isinstance(m, nn.Conv2d):
                _init_conv_relu(m)
        self.out_channels = (64, 80, 288, 768, 1024)

    @property
    def target_layer(self) -> nn.Module:
        """The ReLU after the second added conv."""
        return self.extra[-1]

    def new_modules(self) -> list[nn.Module]:
        """The two added convs (with their Dropout and ReLU)."""
        return [self.extra]

    def forward(self, x: Tensor) -> list[Tensor]:
        """Args: x: (B, 3, H, W) float32, ImageNet-normalised. Returns: the five maps above."""
        f0 = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        f1 = self.Conv2d_3b_1x1(self.maxpool1(f0))
        f2 = self.Mixed_5c(self.Mixed_5b(self.maxpool2(self.Conv2d_4a_3x3(f1))))
        f3 = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(self.Mixed_6a(self.Mixed_5d(f2))))))
        f4 = self.extra(f3)
        return [f0, f1, f2, f3, f4]


_ENCODERS: dict[str, type[Encoder]] = {
    cls.backbone: cls for cls in (ResNet50Encoder, VGG16Encoder, InceptionV3Encoder)
}
assert set(_ENCODERS) == set(BACKBONES), "every backbone in fcam.constants needs an encoder"


def build_encoder(backbone: str, *, pretrained: str = "none") -> Encoder:
    """Build the WSOL encoder of ``backbone``.

    Args:
        backbone: one of :data:`fcam.constants.BACKBONES` ("vgg16", "inceptionv3", "resnet50").
        pretrained: "none" (random init) or "imagenet" (torchvision's ImageNet weights, read from
            the torch hub cache or downloaded into it; the new layers stay random).

    Returns:
        The encoder, in training mode.

    Raises:
        ConfigError: unknown ``backbone`` or ``pretrained``, or ImageNet weights that are neither
            cached nor downloadable (the message names the file to provide and where).
        CheckpointError: the cached weights file is unreadable or does not fit the encoder.
    """
    if backbone not in _ENCODERS:
        raise ConfigError(f"unknown backbone {backbone!r}; expected one of {', '.join(BACKBONES)}")
    if pretrained not in PRETRAINED_CHOICES:
        raise ConfigError(
            f"unknown pretrained {pretrained!r} for backbone {backbone!r}; "
            f"expected one of {', '.join(PRETRAINED_CHOICES)}"
        )
    encoder = _ENCODERS[backbone]()
    if pretrained == "imagenet":
        load_imagenet_weights(encoder)
    return encoder
