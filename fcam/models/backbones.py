"""WSOL backbones: ResNet50, VGG16 and InceptionV3 modified per Choe et al. (CVPR 2020).

"Evaluating Weakly Supervised Object Localization Methods Right" (Choe et al., CVPR 2020) fixes the
backbones every WSOL paper, F-CAM included, is compared on (docs/method.md §3): each one is cut or
re-strided so that a 224x224 input gives a 28x28 deep feature map (stride 8), the layer class
activation maps (CAMs) are read from.

Each :class:`Encoder` returns a list of feature maps from shallow to deep. The last one is the deep
map ``(B, C, h, w)``, output of :attr:`Encoder.target_layer`; the shallower ones are exactly the
skip connections the F-CAM U-Net decoder (:mod:`fcam.models.decoder`) concatenates, chosen as in the
authors' code so that the decoder parameter counts of the paper are met. The encoders are built
from fcam's own blocks (:mod:`fcam.models.blocks`), not torchvision (whose import costs every job
~1.8 s of CPU), with torchvision's module tree and attribute names, so torchvision ImageNet state
dicts load without key renaming (:mod:`fcam.models.pretrained`). They also draw the same random
numbers as the former torchvision-built encoders, so a seed gives the same initial weights as before
(see :func:`_skip_default_init`).

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
from torch import Tensor, nn

from fcam.constants import BACKBONES
from fcam.errors import ConfigError
from fcam.models.blocks import (
    VGG16_CFG,
    BasicConv2d,
    InceptionA,
    InceptionB,
    InceptionC,
    make_resnet_stage,
    make_vgg_layers,
    scaled,
)
from fcam.models.pretrained import IMAGENET_WEIGHTS, ImageNetWeights, load_imagenet_weights

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


#: Elements of the layers torchvision's ``nn.Linear(2048, 1000)`` FC head has (weight + bias).
_FC_1000_NUMEL = 2048 * 1000 + 1000


def _inception_d_numel(c: int) -> int:
    """Conv weights of torchvision's ``InceptionD(c)`` (Mixed_7a), which fcam does not build."""
    return c * 192 + 192 * 320 * 9 + c * 192 + 2 * 192 * 192 * 7 + 192 * 192 * 9


def _inception_e_numel(c: int) -> int:
    """Conv weights of torchvision's ``InceptionE(c)`` (Mixed_7b, 7c), which fcam does not build."""
    return c * (320 + 384 + 448 + 192) + 4 * 384 * 384 * 3 + 448 * 384 * 9


def _skip_default_init(numel: int) -> None:
    """Draw from the global CPU RNG what PyTorch's default init of ``numel`` parameters draws.

    Until fcam had its own blocks, the encoders were cut out of whole torchvision models, whose
    construction also default-initialised the layers fcam drops (ResNet50's FC head; InceptionV3's
    Mixed_7a-c and FC head). That init (``kaiming_uniform_`` / ``uniform_``) draws one number per
    element, so drawing as many here, at the same point, leaves the global random stream where it
    was: a seed still gives the same initial weights (new layers and classifier head included) and
    the same later draws (dropout) as before. Costs ~10 ms (ResNet50) and ~60 ms (InceptionV3) of CPU.
    """
    chunk = torch.empty(min(numel, 1 << 20))
    while numel > 0:
        n = min(numel, chunk.numel())
        chunk[:n].uniform_()
        numel -= n


class Encoder(nn.Module):
    """Base class of the WSOL backbones.

    Subclasses set :attr:`out_channels` and implement :meth:`forward`, :attr:`target_layer` and
    :meth:`new_modules`.

    Attributes:
        backbone: name of the backbone, one of :data:`fcam.constants.BACKBONES`.
        imagenet_weights: the torchvision weights file ``pretrained="imagenet"`` loads.
        dropped_prefixes: state-dict key prefixes of the torchvision model this encoder does not
            have (classifier, auxiliary head, removed stages); loading skips exactly these.
        out_channels: channels of the features :meth:`forward` returns, shallow -> deep.
    """

    backbone: ClassVar[str]
    imagenet_weights: ClassVar[ImageNetWeights]
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

    Initialisation as torchvision's ``resnet50()``: He-normal (fan-out) convs, BatchNorm weight 1
    and bias 0 (no zero-init of the residual BNs).
    """

    backbone = "resnet50"
    imagenet_weights = IMAGENET_WEIGHTS["resnet50"]
    dropped_prefixes = ("fc.",)

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c = [scaled(n, width) for n in (64, 128, 256, 512)]
        self.width = width
        self.conv1 = nn.Conv2d(3, c[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = make_resnet_stage(c[0], c[0], blocks=3, stride=1)
        self.layer2 = make_resnet_stage(4 * c[0], c[1], blocks=4, stride=2)
        self.layer3 = make_resnet_stage(4 * c[1], c[2], blocks=6, stride=1)  # torchvision: stride 2
        self.layer4 = make_resnet_stage(4 * c[2], c[3], blocks=3, stride=1)  # torchvision: stride 2
        if width == 1.0:
            _skip_default_init(_FC_1000_NUMEL)  # torchvision's fc, built here before its init loop
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                _init_conv_relu(m)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self.out_channels = (c[0], 4 * c[0], 4 * c[1], 4 * c[2], 4 * c[3])

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
    imagenet_weights = IMAGENET_WEIGHTS["vgg16"]
    dropped_prefixes = ("classifier.",)
    _removed_pools = ("23", "30")  # pool4, pool5 in torchvision's vgg16().features
    _taps = ("8", "15")  # ReLUs after conv2_2 and conv3_3

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.width = width
        full = make_vgg_layers(VGG16_CFG, width)  # torchvision's vgg16().features, child names included
        kept = [(name, m) for name, m in full.named_children() if name not in self._removed_pools]
        self.features = nn.Sequential(OrderedDict(kept))
        c128, c256, c512, c1024 = (scaled(n, width) for n in (128, 256, 512, 1024))
        self.conv6 = nn.Conv2d(c512, c1024, kernel_size=3, padding=1)
        # Not in place: CAM backward hooks on the target layer must not see their input overwritten.
        self.relu6 = nn.ReLU(inplace=False)
        for m in self.features.modules():  # torchvision's VGG init; conv6 keeps PyTorch's default,
            if isinstance(m, nn.Conv2d):  # as in the authors' code (created after that init)
                _init_conv_relu(m)
        self.out_channels = (c128, c256, c1024)

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


class InceptionV3Encoder(Encoder):
    """InceptionV3 up to Mixed_6e with Mixed_6a at stride 1, plus two 3x3 convs to 1024 channels.

    torchvision's ``inception_v3(weights=None, aux_logits=False, init_weights=False)`` up to
    Mixed_6e, with PyTorch's default init (``transform_input`` False: inputs use ImageNet mean/std
    like the other backbones); Mixed_7*, the auxiliary head and the FC layer are dropped. Mixed_6a
    is ``InceptionB(288, stride=1)``: its two 3x3 stride-2 convs and its max-pool get stride 1 and
    padding 1, so it keeps the spatial size (Choe et al.). Added ("new") layers, Xavier-uniform
    with zero bias as in the authors' code (``wsol_backbones/inceptionv3.py``):
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
        width: channel multiplier of every conv (1: the paper's network).

    Raises:
        ConfigError: unknown ``geometry``.
    """

    backbone = "inceptionv3"
    imagenet_weights = IMAGENET_WEIGHTS["inceptionv3"]
    dropped_prefixes = ("AuxLogits.", "Mixed_7", "fc.")

    def __init__(self, geometry: str = "fcam-wsol", width: float = 1.0) -> None:
        super().__init__()
        if geometry not in INCEPTION_GEOMETRIES:
            choices = ", ".join(INCEPTION_GEOMETRIES)
            raise ConfigError(f"unknown InceptionV3 geometry {geometry!r}; expected one of {choices}")
        self.geometry, self.width = geometry, width

        def s(n: int) -> int:
            return scaled(n, width)

        pad = 1 if geometry == "fcam-wsol" else 0  # of Conv2d_2a and Conv2d_4a
        self.Conv2d_1a_3x3 = BasicConv2d(3, s(32), kernel_size=3, stride=2, padding=1)  # torchvision: pad 0
        self.Conv2d_2a_3x3 = BasicConv2d(s(32), s(32), kernel_size=3, padding=pad)
        self.Conv2d_2b_3x3 = BasicConv2d(s(32), s(64), kernel_size=3, padding=1)
        # torchvision: MaxPool2d(3, stride=2), no padding, floor mode.
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True)
        self.Conv2d_3b_1x1 = BasicConv2d(s(64), s(80), kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(s(80), s(192), kernel_size=3, padding=pad)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True)
        self.Mixed_5b = InceptionA(s(192), pool_features=s(32), width=width)
        self.Mixed_5c = InceptionA(self.Mixed_5b.out_channels, pool_features=s(64), width=width)
        self.Mixed_5d = InceptionA(self.Mixed_5c.out_channels, pool_features=s(64), width=width)
        self.Mixed_6a = InceptionB(self.Mixed_5d.out_channels, stride=1, width=width)  # torchvision: stride 2
        c6 = self.Mixed_6a.out_channels
        self.Mixed_6b = InceptionC(c6, channels_7x7=s(128), width=width)
        self.Mixed_6c = InceptionC(c6, channels_7x7=s(160), width=width)
        self.Mixed_6d = InceptionC(c6, channels_7x7=s(160), width=width)
        self.Mixed_6e = InceptionC(c6, channels_7x7=s(192), width=width)
        if width == 1.0:
            # torchvision's Mixed_7a (InceptionD(768)), Mixed_7b, Mixed_7c (InceptionE(1280), (2048)), fc.
            _skip_default_init(
                _inception_d_numel(768) + _inception_e_numel(1280) + _inception_e_numel(2048) + _FC_1000_NUMEL
            )
        self.extra = nn.Sequential(
            nn.Dropout(0.5),
            nn.Conv2d(c6, s(1024), kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Conv2d(s(1024), s(1024), kernel_size=3, padding=1),
            nn.ReLU(inplace=False),  # the CAM target: not in place (see VGG16Encoder.relu6)
        )
        for m in self.extra.modules():  # the authors' init of the added convs (Xavier-uniform)
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        self.out_channels = (s(64), s(80), self.Mixed_5c.out_channels, c6, s(1024))

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


def build_encoder(backbone: str, *, pretrained: str = "none", width: float = 1.0) -> Encoder:
    """Build the WSOL encoder of ``backbone``.

    Args:
        backbone: one of :data:`fcam.constants.BACKBONES` ("vgg16", "inceptionv3", "resnet50").
        pretrained: "none" (random init) or "imagenet" (torchvision's ImageNet weights, read from
            the torch hub cache or downloaded into it; the new layers stay random).
        width: channel multiplier of every layer, in (0, 1]: 1 is the paper's network; a slimmer
            one (the synthetic CPU preset) keeps the architecture's depth, strides and taps.

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
    if not 0 < width <= 1:
        raise ConfigError(f"width of backbone {backbone!r} must be in (0, 1], got {width!r}")
    if pretrained == "imagenet" and width != 1.0:
        raise ConfigError(f"pretrained 'imagenet' needs the full network (width 1), got width {width}")
    encoder = _ENCODERS[backbone](width=width)
    if pretrained == "imagenet":
        load_imagenet_weights(encoder)
    return encoder
