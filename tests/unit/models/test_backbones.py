"""Shapes, channels, strides and CAM target layers of the WSOL encoders."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fcam.constants import BACKBONES
from fcam.errors import ConfigError
from fcam.models import InceptionV3Encoder, VGG16Encoder, build_decoder, build_encoder
from fcam.models.blocks import InceptionB

# Feature sizes at 224 (batch 1), shallow -> deep, as documented in fcam.models.backbones.
SHAPES_224 = {
    "resnet50": [(64, 112), (256, 56), (512, 28), (1024, 28), (2048, 28)],
    "vgg16": [(128, 112), (256, 56), (1024, 28)],
    "inceptionv3": [(64, 112), (80, 57), (288, 29), (768, 29), (1024, 29)],  # the F-CAM code's
}
DEEP_224 = {"resnet50": 28, "vgg16": 28, "inceptionv3": 29}


def deep_size(backbone: str, n: int, geometry: str = "fcam-wsol") -> int:
    """The documented side of the deep map for an input side n."""
    if backbone == "resnet50":
        return math.ceil(n / 8)
    if backbone == "vgg16":
        return n // 8
    if geometry == "fcam-wsol":
        a = math.ceil(n / 2)
        b = a // 2 + 1
        return b // 2 + 1
    a = math.ceil(n / 2) - 2
    b = math.ceil((a - 1) / 2) - 1
    return math.ceil((b - 1) / 2) + 1


@pytest.mark.parametrize("backbone", BACKBONES)
def test_full_resolution_shapes_at_224(classifiers, backbone):
    clf = classifiers[backbone]
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        feats, logits = clf.forward_features(x)
        seg = build_decoder(backbone, clf.encoder.out_channels).eval()(feats, (224, 224))
    assert [(f.shape[1], f.shape[2]) for f in feats] == SHAPES_224[backbone]
    assert all(f.shape[0] == 1 and f.shape[2] == f.shape[3] for f in feats)
    side = DEEP_224[backbone]
    assert tuple(feats[-1].shape) == (1, clf.encoder.out_channels[-1], side, side)
    assert tuple(logits.shape) == (1, 200)
    assert tuple(seg.shape) == (1, 2, 224, 224)
    assert torch.isfinite(seg).all()


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize(("n", "batch", "expected"), [(64, 2, 8), (96, 1, 12), (100, 1, None)])
def test_deep_map_size_mapping(classifiers, backbone, n, batch, expected):
    enc = classifiers[backbone].encoder
    with torch.no_grad():
        feats = enc(torch.randn(batch, 3, n, n))
    h = feats[-1].shape[-1]
    assert h == deep_size(backbone, n)
    if expected is not None and backbone != "inceptionv3":  # multiples of 8 map to n / 8
        assert h == expected
    if expected is not None and backbone == "inceptionv3":  # the F-CAM code's geometry: n / 8 + 1
        assert h == expected + 1
    assert tuple(f.shape[1] for f in feats) == enc.out_channels
    assert all(f.shape[0] == batch for f in feats)


def test_non_multiple_of_8_sizes_differ_by_backbone(classifiers):
    sizes = {b: deep_size(b, 100) for b in BACKBONES}
    assert sizes == {"resnet50": 13, "vgg16": 12, "inceptionv3": 14}
    assert deep_size("inceptionv3", 100, "wsolevaluation") == 12


def test_deep_map_is_rectangular_for_rectangular_input(classifiers):
    with torch.no_grad():
        feats = classifiers["resnet50"].encoder(torch.randn(1, 3, 64, 96))
    assert tuple(feats[-1].shape[-2:]) == (8, 12)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_target_layer_output_is_last_feature(classifiers, backbone):
    enc = classifiers[backbone].encoder
    seen = []
    handle = enc.target_layer.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        with torch.no_grad():
            feats = enc(torch.randn(1, 3, 64, 64))
    finally:
        handle.remove()
    assert len(seen) == 1
    assert seen[0] is feats[-1]
    assert (feats[-1] >= 0).all()  # every target is after a ReLU


@pytest.mark.parametrize("backbone", BACKBONES)
def test_target_layer_supports_full_backward_hooks(classifiers, backbone):
    """Gradient CAMs may hook the target layer's backward: no in-place op may break that."""
    enc = build_encoder(backbone).eval()
    grads = []
    handle = enc.target_layer.register_full_backward_hook(lambda _m, _gi, go: grads.append(go[0]))
    try:
        feats = enc(torch.randn(1, 3, 32, 32))
        feats[-1].sum().backward()
    finally:
        handle.remove()
    assert len(grads) == 1
    assert torch.equal(grads[0], torch.ones_like(feats[-1]))


def test_resnet50_strides_without_dilation(classifiers):
    enc = classifiers["resnet50"].encoder
    for layer in (enc.layer3, enc.layer4):
        assert layer[0].conv2.stride == (1, 1)
        assert layer[0].downsample[0].stride == (1, 1)
    assert enc.layer2[0].conv2.stride == (2, 2)
    assert all(m.dilation == (1, 1) for m in enc.modules() if isinstance(m, nn.Conv2d))


def test_vgg16_layout(classifiers):
    enc = classifiers["vgg16"].encoder
    assert isinstance(enc, VGG16Encoder)
    pools = [name for name, m in enc.features.named_children() if isinstance(m, nn.MaxPool2d)]
    assert pools == ["4", "9", "16"]  # pool1-3 kept under torchvision's indices; pool4/5 removed
    assert not any(isinstance(m, nn.Linear) for m in enc.modules())
    assert (enc.conv6.in_channels, enc.conv6.out_channels, enc.conv6.padding) == (512, 1024, (1, 1))
    assert enc.target_layer is enc.relu6
    assert enc.new_modules() == [enc.conv6]


def test_inceptionv3_layout(classifiers):
    enc = classifiers["inceptionv3"].encoder
    assert isinstance(enc, InceptionV3Encoder)
    names = {name.split(".")[0] for name, _ in enc.named_children()}
    assert not any(n.startswith(("Mixed_7", "AuxLogits", "fc")) for n in names)
    extra = list(enc.extra)
    assert [type(m) for m in extra] == [nn.Dropout, nn.Conv2d, nn.ReLU, nn.Dropout, nn.Conv2d, nn.ReLU]
    assert [m.p for m in extra if isinstance(m, nn.Dropout)] == [0.5, 0.5]
    assert [(m.in_channels, m.out_channels) for m in extra if isinstance(m, nn.Conv2d)] == [
        (768, 1024),
        (1024, 1024),
    ]
    assert enc.target_layer is extra[-1]
    assert enc.new_modules() == [enc.extra]


def test_inceptionv3_geometries():
    # The F-CAM code pads every 3x3 conv (29 x 29 at 224); wsolevaluation keeps Conv2d_2a and
    # Conv2d_4a at padding 0 (28 x 28). Same parameters either way.
    authors, choe = InceptionV3Encoder(), InceptionV3Encoder(geometry="wsolevaluation")
    assert authors.geometry == "fcam-wsol"
    assert (authors.Conv2d_2a_3x3.conv.padding, authors.Conv2d_4a_3x3.conv.padding) == ((1, 1), (1, 1))
    assert (choe.Conv2d_2a_3x3.conv.padding, choe.Conv2d_4a_3x3.conv.padding) == ((0, 0), (0, 0))
    assert authors.Conv2d_1a_3x3.conv.padding == choe.Conv2d_1a_3x3.conv.padding == (1, 1)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        sizes = {name: [f.shape[-1] for f in enc.eval()(x)] for name, enc in (("a", authors), ("c", choe))}
    assert sizes == {"a": [112, 57, 29, 29, 29], "c": [110, 56, 28, 28, 28]}
    for n in (64, 96, 100, 224, 256):
        with torch.no_grad():
            side = choe(torch.randn(1, 3, n, n))[-1].shape[-1]
        assert side == deep_size("inceptionv3", n, "wsolevaluation")
    assert sum(p.numel() for p in authors.parameters()) == sum(p.numel() for p in choe.parameters())
    with pytest.raises(ConfigError, match="unknown InceptionV3 geometry 'big'"):
        InceptionV3Encoder(geometry="big")


def test_inceptionv3_skip_taps_are_the_authors_stages(classifiers):
    # The authors' stages end after Conv2d_2b, Conv2d_3b, Mixed_5c (not Mixed_5d), Mixed_6e, SPG_A3_2b.
    enc = classifiers["inceptionv3"].encoder
    seen = {}
    names = ("Conv2d_2b_3x3", "Conv2d_3b_1x1", "Mixed_5c", "Mixed_6e", "extra")
    handles = [
        getattr(enc, n).register_forward_hook(lambda _m, _i, out, n=n: seen.__setitem__(n, out))
        for n in names
    ]
    try:
        with torch.no_grad():
            feats = enc(torch.randn(1, 3, 64, 64))
    finally:
        for h in handles:
            h.remove()
    for name, feat in zip(names, feats, strict=True):
        assert seen[name] is feat


def test_inception_mixed_6a_keeps_spatial_size():
    block = build_encoder("inceptionv3").Mixed_6a.eval()
    assert isinstance(block, InceptionB)
    assert block.stride == 1
    with torch.no_grad():
        out = block(torch.randn(1, 288, 9, 7))
    assert tuple(out.shape) == (1, 768, 9, 7)


def test_resnet50_has_no_new_modules(classifiers):
    assert classifiers["resnet50"].encoder.new_modules() == []


def test_unknown_backbone_is_a_config_error():
    with pytest.raises(ConfigError, match=r"'resnet18'.*vgg16, inceptionv3, resnet50"):
        build_encoder("resnet18")


def test_unknown_pretrained_is_a_config_error():
    with pytest.raises(ConfigError, match=r"'places365'.*none, imagenet"):
        build_encoder("resnet50", pretrained="places365")
