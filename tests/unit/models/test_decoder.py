"""The U-Net decoder (hand-computed upsampling/concatenation) and the frozen-classifier FCAM wrapper."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcam.constants import BACKBONES
from fcam.errors import ConfigError
from fcam.models import FCAM, UNetDecoder, build_classifier, build_decoder

ENCODER_CHANNELS = {
    "resnet50": (64, 256, 512, 1024, 2048),
    "vgg16": (128, 256, 1024),
    "inceptionv3": (64, 80, 288, 768, 1024),
}
BN_SCALE = 1.0 / (1.0 + 1e-5) ** 0.5  # an eval-mode BatchNorm with default statistics
#: Published decoder sizes (millions), docs/method.md §4.
PAPER_DECODER_MPARAMS = {"vgg16": 23.1, "inceptionv3": 5.7, "resnet50": 9.0}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def unet_param_count(encoder_channels, decoder_channels, center):
    """Hand count: each 3x3 conv-BN-ReLU has 9 * in * out weights (no bias) + 2 * out BN affine."""

    def conv_bn(cin, cout):
        return 9 * cin * cout + 2 * cout

    deep = encoder_channels[-1]
    skips = list(reversed(encoder_channels[:-1])) + [0] * (len(decoder_channels) - len(encoder_channels) + 1)
    total = 2 * conv_bn(deep, deep) if center else 0
    cin = deep
    for skip, cout in zip(skips, decoder_channels, strict=True):
        total += conv_bn(cin + skip, cout) + conv_bn(cout, cout)
        cin = cout
    return total + 9 * decoder_channels[-1] * 2 + 2  # final 3x3 conv to 2 channels, with bias


@pytest.mark.parametrize("backbone", BACKBONES)
def test_decoder_parameter_count(classifiers, backbone):
    assert classifiers[backbone].encoder.out_channels == ENCODER_CHANNELS[backbone]
    decoder = build_decoder(backbone, ENCODER_CHANNELS[backbone])
    count = n_params(decoder)
    assert count / 1e6 == pytest.approx(PAPER_DECODER_MPARAMS[backbone], rel=0.02)
    spec = {"vgg16": ((256, 128, 64), True)}.get(backbone, ((256, 128, 64, 32, 16), False))
    assert count == unet_param_count(ENCODER_CHANNELS[backbone], *spec)


def set_channel_identity(decoder: nn.Module) -> None:
    """Every 3x3 conv copies input channel o to output channel o (centre tap), biases 0."""
    with torch.no_grad():
        for m in decoder.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.zero_()
                for o in range(min(m.in_channels, m.out_channels)):
                    m.weight[o, o, 1, 1] = 1.0
                if m.bias is not None:
                    m.bias.zero_()


def test_upsample_resize_and_concat_by_hand():
    decoder = UNetDecoder((1, 1), (2,)).eval()
    set_channel_identity(decoder)
    deep = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # positive: the ReLUs are identities
    skip = torch.full((1, 1, 5, 5), 7.0)
    out = decoder([skip, deep], (5, 5))
    # x2 nearest: 3 -> 6 (rows/cols d0 d0 d1 d1 d2 d2), then bilinear with align_corners=True
    # 6 -> 5 (the F-CAM code's DecoderBlock) samples the 6-grid at i * 5/4 = 0, 1.25, 2.5, 3.75, 5:
    # d0, 0.75 d0 + 0.25 d1, d1, 0.25 d1 + 0.75 d2, d2 along each axis.
    rows = torch.tensor([[1, 0, 0], [0.75, 0.25, 0], [0, 1, 0], [0, 0.25, 0.75], [0, 0, 1]])
    expected_up = rows @ deep[0, 0] @ rows.T
    scale = BN_SCALE**2  # two conv-BN-ReLU in the block
    torch.testing.assert_close(out[0, 0], expected_up * scale)  # channel 0: upsampled deep map
    torch.testing.assert_close(out[0, 1], torch.full((5, 5), 7.0) * scale)  # channel 1: the skip


def test_block_without_skip_upsamples_by_two():
    decoder = UNetDecoder((1, 1), (2, 2)).eval()
    set_channel_identity(decoder)
    deep = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    skip = torch.full((1, 1, 4, 4), 5.0)
    out = decoder([skip, deep], (8, 8))
    first = torch.cat([deep.repeat_interleave(2, 2).repeat_interleave(2, 3), skip], dim=1) * BN_SCALE**2
    expected = first.repeat_interleave(2, 2).repeat_interleave(2, 3) * BN_SCALE**2
    torch.testing.assert_close(out, expected)


def test_output_resized_bilinearly_to_out_size():
    decoder = UNetDecoder((1, 1), (2,)).eval()
    set_channel_identity(decoder)
    deep, skip = torch.rand(1, 1, 3, 3) + 0.1, torch.rand(1, 1, 6, 6) + 0.1
    native = decoder([skip, deep], (6, 6))
    resized = decoder([skip, deep], (13, 9))
    assert resized.shape == (1, 2, 13, 9)
    torch.testing.assert_close(
        resized, F.interpolate(native, size=(13, 9), mode="bilinear", align_corners=False)
    )


@pytest.mark.parametrize("backbone", BACKBONES)
def test_decoder_on_real_features_at_small_sizes(classifiers, backbone):
    clf = classifiers[backbone]
    decoder = build_decoder(backbone, clf.encoder.out_channels).eval()
    with torch.no_grad():
        for size in [(100, 100), (64, 96)]:
            out = decoder(clf.encoder(torch.randn(1, 3, *size)), size)
            assert out.shape == (1, 2, *size)
            assert torch.isfinite(out).all()


def test_wrong_features_are_rejected():
    decoder = build_decoder("vgg16", ENCODER_CHANNELS["vgg16"])
    feats = [torch.zeros(1, 128, 8, 8), torch.zeros(1, 256, 4, 4)]
    with pytest.raises(ValueError, match=r"channels \(128, 256\), expected \(128, 256, 1024\)"):
        decoder(feats, (16, 16))


def test_more_skips_than_blocks_is_rejected():
    with pytest.raises(ValueError, match="3 skip features"):
        UNetDecoder((8, 8, 8, 8), (4, 4))


def test_unknown_backbone_decoder():
    with pytest.raises(ConfigError, match=r"'alexnet'.*vgg16, inceptionv3, resnet50"):
        build_decoder("alexnet", (64,))


# ---------------------------------------------------------------- FCAM


@pytest.fixture(scope="module")
def fcam_inception() -> FCAM:
    torch.manual_seed(1)
    return FCAM(build_classifier("inceptionv3", 5))


def bn_stats(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items() if "running" in k or "num_batches" in k}


@pytest.mark.parametrize("backbone", ["resnet50", "inceptionv3"])
def test_classifier_stays_frozen_through_decoder_training(backbone):
    torch.manual_seed(0)
    fcam = FCAM(build_classifier(backbone, 5)).train()
    assert fcam.training
    assert fcam.decoder.training
    assert not any(m.training for m in fcam.classifier.modules())
    assert not any(p.requires_grad for p in fcam.classifier.parameters())
    clf_before = {k: v.clone() for k, v in fcam.classifier.state_dict().items()}
    dec_stats_before = bn_stats(fcam.decoder)

    opt = torch.optim.SGD(fcam.decoder.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(2, 3, 48, 48)
    for _ in range(2):
        opt.zero_grad()
        seg = fcam(x)
        F.cross_entropy(seg, torch.randint(0, 2, (2, 48, 48))).backward()
        opt.step()

    clf_after = fcam.classifier.state_dict()
    assert all(torch.equal(clf_before[k], clf_after[k]) for k in clf_before)  # weights and BN stats
    assert all(p.grad is None for p in fcam.classifier.parameters())
    assert all(p.grad is not None for p in fcam.decoder.parameters())
    dec_stats_after = bn_stats(fcam.decoder)  # the decoder's BatchNorms did update
    assert all(dec_stats_after[k].ne(dec_stats_before[k]).any() for k in dec_stats_before)


def test_train_false_and_eval_switch_only_the_decoder(fcam_inception):
    fcam = fcam_inception
    fcam.eval()
    assert not fcam.training
    assert not fcam.decoder.training
    fcam.train()
    assert fcam.decoder.training
    assert not fcam.classifier.training
    fcam.classifier.train(False)
    assert not any(m.training for m in fcam.classifier.modules())


def test_features_carry_no_gradient(fcam_inception):
    fcam = fcam_inception.train()
    seen = []
    handle = fcam.classifier.target_layer.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        x = torch.randn(1, 3, 48, 48, requires_grad=True)
        seg = fcam(x)
    finally:
        handle.remove()
    assert not seen[0].requires_grad
    assert seg.requires_grad
    seg.sum().backward()
    assert x.grad is None  # the image is reached only through the frozen encoder


def test_forward_with_logits_is_consistent_and_dropout_is_off(fcam_inception):
    fcam = fcam_inception.train()  # decoder in train mode; the classifier's Dropout must stay off
    x = torch.randn(2, 3, 48, 48)
    seg1, cls1 = fcam.forward_with_logits(x)
    _seg2, cls2 = fcam.forward_with_logits(x)
    assert seg1.shape == (2, 2, 48, 48)
    assert cls1.shape == (2, 5)
    torch.testing.assert_close(cls1, cls2, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(cls1, fcam.classifier(x))
        fcam.eval()
        seg_eval, _ = fcam.forward_with_logits(x)
        torch.testing.assert_close(seg_eval, fcam(x))


def test_foreground_is_softmax_channel_one(fcam_inception):
    fcam = fcam_inception.eval()
    x = torch.randn(3, 3, 40, 56)
    with torch.no_grad():
        fg = fcam.foreground(x)
        logits = fcam(x)
    assert fg.shape == (3, 40, 56)
    assert fg.min() >= 0
    assert fg.max() <= 1
    torch.testing.assert_close(fg, torch.sigmoid(logits[:, 1] - logits[:, 0]))  # 2-class softmax


def test_custom_decoder_is_used():
    clf = build_classifier("resnet50", 3)
    decoder = UNetDecoder(clf.encoder.out_channels, (8, 8, 8, 8, 8))
    fcam = FCAM(clf, decoder)
    assert fcam.decoder is decoder
    with torch.no_grad():
        assert fcam(torch.randn(1, 3, 32, 32)).shape == (1, 2, 32, 32)
