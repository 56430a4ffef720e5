"""The F-CAM decoder: a U-Net decoder on the frozen classifier's features (docs/method.md §4).

F-CAM (Belharbi et al., "F-CAM: Full Resolution Class Activation Maps via Guided Parametric
Upscaling", WACV 2022) keeps the phase-1 classifier frozen and trains a U-Net decoder, in the style
of segmentation_models_pytorch, that maps the encoder features to two full-resolution maps
(background, foreground). The foreground map ``S^1 = softmax(logits)[:, 1]`` replaces the
interpolated CAM at inference.

Decoder architecture: the deepest encoder feature is the input; the shallower ones are skip
connections used deepest-first. Block i: ``x = upsample_nearest_x2(x)``; if a skip is left, resize
``x`` to the skip's size when they differ (bilinear, ``align_corners=True``, as the F-CAM code's
``dlib/unet/decoder.py`` ``DecoderBlock``) and ``x = cat(x, skip)``; then two
(3x3 conv without bias, BatchNorm, ReLU). Blocks beyond the available skips have none. A final 3x3
conv gives 2 logit channels, bilinearly resized (align_corners False) to the input size.

Per backbone (:data:`DECODER_SPECS`), with the encoder features of :mod:`fcam.models.backbones`:

=========== ======================== ===================== ===================== ===========
backbone    decoder channels         skips (channels)      centre block          parameters
=========== ======================== ===================== ===================== ===========
resnet50    (256, 128, 64, 32, 16)   1024, 512, 256, 64    none                  9.01M
vgg16       (256, 128, 64)           256, 128              2 x conv 1024->1024   23.12M
inceptionv3 (256, 128, 64, 32, 16)   768, 288, 80, 64      none                  5.70M
=========== ======================== ===================== ===================== ===========

The skips are the F-CAM code's encoder stages (fcam-wsol ``dlib/encoders``, the U-Net drops
their first, full-resolution feature): ResNet50 layer3, layer2, layer1 and the ReLU after conv1;
VGG16 relu3_3 and relu2_2; InceptionV3 Mixed_6e, Mixed_5c, Conv2d_3b and Conv2d_2b.

"Parameters" counts every parameter of :class:`UNetDecoder` (centre, blocks, BN affine, final
conv) and matches the paper's 9.0M / 23.1M / 5.7M.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fcam.constants import BACKBONES
from fcam.errors import ConfigError
from fcam.models.blocks import scaled
from fcam.models.classifier import WSOLClassifier

__all__ = ["DECODER_SPECS", "FCAM", "DecoderSpec", "UNetDecoder", "build_decoder"]


@dataclass(frozen=True)
class DecoderSpec:
    """Shape of the U-Net decoder of one backbone.

    Attributes:
        channels: output channels of each upsampling block, deepest first.
        center: whether a centre block (two 3x3 conv-BN-ReLU keeping the deep channels) runs first.
    """

    channels: tuple[int, ...]
    center: bool = False


#: The decoders of the paper / authors' code, per backbone.
DECODER_SPECS: dict[str, DecoderSpec] = {
    "resnet50": DecoderSpec((256, 128, 64, 32, 16)),
    "inceptionv3": DecoderSpec((256, 128, 64, 32, 16)),
    "vgg16": DecoderSpec((256, 128, 64), center=True),
}
assert set(DECODER_SPECS) == set(BACKBONES), "every backbone in fcam.constants needs a decoder"


class _ConvBNReLU(nn.Sequential):
    """3x3 conv (no bias: BatchNorm follows), BatchNorm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class _DecoderBlock(nn.Module):
    """Nearest x2 upsampling, optional skip concatenation, two conv-BN-ReLU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = _ConvBNReLU(in_channels + skip_channels, out_channels)
        self.conv2 = _ConvBNReLU(out_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor | None) -> Tensor:
        """(B, in, h, w) [+ skip (B, s, h', w')] -> (B, out, 2h, 2w) or (B, out, h', w')."""
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            if x.shape[-2:] != skip.shape[-2:]:
                # Stride-1 stages (and InceptionV3's odd sizes) make the skip smaller than 2x. The
                # F-CAM code resizes bilinearly with align_corners=True (so 28 -> 56 -> 28 is not
                # the identity that nearest would give, but a slight resampling); followed here.
                x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=True)
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UNetDecoder(nn.Module):
    """U-Net decoder producing full-resolution segmentation logits (see the module docstring).

    Args:
        encoder_channels: channels of the encoder features, shallow -> deep (the last is the input,
            the others are skips).
        decoder_channels: output channels of each block, deepest first; at least as many blocks as
            skips.
        center: add a centre block (two conv-BN-ReLU at the deep channel count) before the blocks.
        num_classes: output channels of the final conv (2: background, foreground).

    Raises:
        ValueError: more skips than blocks, or empty channel tuples.
    """

    def __init__(
        self,
        encoder_channels: tuple[int, ...],
        decoder_channels: tuple[int, ...],
        *,
        center: bool = False,
        num_classes: int = 2,
    ) -> None:
        super().__init__()
        if not encoder_channels or not decoder_channels:
            raise ValueError(
                f"encoder_channels {encoder_channels} and decoder_channels {decoder_channels} "
                "must not be empty"
            )
        skips = tuple(reversed(encoder_channels[:-1]))
        if len(skips) > len(decoder_channels):
            raise ValueError(
                f"{len(skips)} skip features (encoder_channels {encoder_channels}) but only "
                f"{len(decoder_channels)} decoder blocks (decoder_channels {decoder_channels})"
            )
        self.encoder_channels = tuple(encoder_channels)
        deep = encoder_channels[-1]
        self.center = nn.Sequential(_ConvBNReLU(deep, deep), _ConvBNReLU(deep, deep)) if center else None
        skip_channels = skips + (0,) * (len(decoder_channels) - len(skips))
        in_channels = (deep, *decoder_channels[:-1])
        self.blocks = nn.ModuleList(
            _DecoderBlock(i, s, o)
            for i, s, o in zip(in_channels, skip_channels, decoder_channels, strict=True)
        )
        self.head = nn.Conv2d(decoder_channels[-1], num_classes, kernel_size=3, padding=1)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.head:
                nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, features: list[Tensor], out_size: tuple[int, int]) -> Tensor:
        """Decode encoder features into segmentation logits.

        Args:
            features: the encoder's list, shallow -> deep, channels ``encoder_channels``.
            out_size: (H, W) of the output, normally the input image size.

        Returns:
            (B, num_classes, H, W) float32 logits (channel 0 background, 1 foreground).

        Raises:
            ValueError: ``features`` does not match ``encoder_channels``.
        """
        channels = tuple(f.shape[1] for f in features)
        if channels != self.encoder_channels:
            raise ValueError(f"features have channels {channels}, expected {self.encoder_channels}")
        x = features[-1]
        if self.center is not None:
            x = self.center(x)
        skips = features[-2::-1]
        for i, block in enumerate(self.blocks):
            x = block(x, skips[i] if i < len(skips) else None)
        logits = self.head(x)
        if tuple(logits.shape[-2:]) != tuple(out_size):
            logits = F.interpolate(logits, size=tuple(out_size), mode="bilinear", align_corners=False)
        return logits


def build_decoder(backbone: str, encoder_channels: tuple[int, ...], width: float = 1.0) -> UNetDecoder:
    """The F-CAM decoder of ``backbone`` (:data:`DECODER_SPECS`) for features of ``encoder_channels``.

    Args:
        backbone: one of :data:`fcam.constants.BACKBONES`.
        encoder_channels: ``Encoder.out_channels`` of that backbone.
        width: multiplier of the decoder's channels, as the encoder's (1: the paper's decoder).

    Raises:
        ConfigError: unknown ``backbone``.
    """
    if backbone not in DECODER_SPECS:
        raise ConfigError(f"unknown backbone {backbone!r}; expected one of {', '.join(BACKBONES)}")
    spec = DECODER_SPECS[backbone]
    channels = tuple(scaled(c, width) for c in spec.channels)
    return UNetDecoder(tuple(encoder_channels), channels, center=spec.center)


class FCAM(nn.Module):
    """F-CAM: a frozen WSOL classifier and a trainable U-Net decoder on its features.

    The classifier is frozen for good: its parameters get ``requires_grad=False``, it stays in eval
    mode (BatchNorm running statistics and Dropout fixed) even when ``FCAM.train()`` is called, and
    its features are computed under ``torch.no_grad()``. Train only ``self.decoder.parameters()``.

    Args:
        classifier: the phase-1 classifier (frozen in place).
        decoder: the decoder; default ``build_decoder(classifier.backbone, encoder.out_channels)``.
    """

    def __init__(self, classifier: WSOLClassifier, decoder: UNetDecoder | None = None) -> None:
        super().__init__()
        classifier.requires_grad_(False)
        self.classifier = classifier
        if decoder is None:
            decoder = build_decoder(classifier.backbone, classifier.encoder.out_channels)
        self.decoder = decoder
        self.train()

    def train(self, mode: bool = True) -> FCAM:
        """Set the decoder's mode; the classifier always stays in eval mode."""
        super().train(mode)
        self.classifier.eval()
        return self

    def forward_with_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Segmentation and classification logits from one encoder pass.

        Args:
            x: (B, 3, H, W) float32, ImageNet-normalised.

        Returns:
            ``(seg_logits, cls_logits)``: (B, 2, H, W) float32 and (B, K) float32 (no gradient).
        """
        with torch.no_grad():
            features, cls_logits = self.classifier.forward_features(x)
        return self.decoder(features, (x.shape[-2], x.shape[-1])), cls_logits

    def forward(self, x: Tensor) -> Tensor:
        """Args: x: (B, 3, H, W) float32. Returns: segmentation logits (B, 2, H, W) float32."""
        with torch.no_grad():
            features = self.classifier.encoder(x)
        return self.decoder(features, (x.shape[-2], x.shape[-1]))

    def foreground(self, x: Tensor) -> Tensor:
        """Foreground map ``softmax(logits)[:, 1]``: (B, H, W) float32 in [0, 1], not min-max normalised."""
        return torch.softmax(self.forward(x), dim=1)[:, 1]
