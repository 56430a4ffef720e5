"""Models: the WSOL backbones (:mod:`.backbones`), the phase-1 classifier (:mod:`.classifier`) and
the F-CAM U-Net decoder (:mod:`.decoder`)."""

from fcam.models.backbones import (
    PRETRAINED_CHOICES,
    Encoder,
    InceptionV3Encoder,
    ResNet50Encoder,
    VGG16Encoder,
    build_encoder,
)
from fcam.models.classifier import NEW_LAYER_LR_MULT, WSOLClassifier, build_classifier
from fcam.models.decoder import DECODER_SPECS, FCAM, DecoderSpec, UNetDecoder, build_decoder
from fcam.models.pretrained import imagenet_cache_path, load_imagenet_weights

__all__ = [
    "DECODER_SPECS",
    "FCAM",
    "NEW_LAYER_LR_MULT",
    "PRETRAINED_CHOICES",
    "DecoderSpec",
    "Encoder",
    "InceptionV3Encoder",
    "ResNet50Encoder",
    "UNetDecoder",
    "VGG16Encoder",
    "WSOLClassifier",
    "build_classifier",
    "build_decoder",
    "build_encoder",
    "imagenet_cache_path",
    "load_imagenet_weights",
]
