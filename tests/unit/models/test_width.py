"""Slimmer networks (``classifier.width``): same architecture, depth, strides and taps, fewer channels."""

from __future__ import annotations

import pytest
import torch

from fcam.errors import ConfigError
from fcam.io import save_checkpoint
from fcam.models import FCAM, build_classifier, build_decoder
from fcam.models.checkpoints import classifier_checkpoint, decoder_checkpoint, load_fcam


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("backbone", ["vgg16", "inceptionv3", "resnet50"])
def test_a_quarter_width_network_keeps_the_maps_sizes_and_has_about_a_sixteenth_of_the_weights(backbone):
    torch.manual_seed(0)
    full = build_classifier(backbone, 4)
    slim = build_classifier(backbone, 4, width=0.25)
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        f_full, _ = full.eval().forward_features(x)
        f_slim, logits = slim.eval().forward_features(x)
    assert [f.shape[-2:] for f in f_slim] == [f.shape[-2:] for f in f_full]
    assert [f.shape[1] for f in f_slim] == list(slim.encoder.out_channels)
    assert logits.shape == (1, 4)
    ratio = _params(slim.encoder) / _params(full.encoder)
    assert 1 / 20 < ratio < 1 / 12, ratio
    decoder = build_decoder(backbone, slim.encoder.out_channels, 0.25)
    assert _params(decoder) < _params(build_decoder(backbone, full.encoder.out_channels)) / 10
    with torch.no_grad():
        seg = FCAM(slim, decoder).eval()(x)
    assert seg.shape == (1, 2, 40, 40)


def test_width_is_saved_with_the_checkpoints_and_rebuilt(tmp_path):
    torch.manual_seed(0)
    slim = build_classifier("resnet50", 3, width=0.25).eval()
    save_checkpoint(classifier_checkpoint(slim, ds="synth_boxes", epoch=1), tmp_path / "c.pt")
    model = FCAM(slim, build_decoder("resnet50", slim.encoder.out_channels, 0.25))
    ckpt = decoder_checkpoint(model, classifier=tmp_path / "c.pt", epoch=1, score=0.0)
    save_checkpoint(ckpt, tmp_path / "d.pt")
    loaded = load_fcam(tmp_path / "d.pt", tmp_path / "c.pt", torch.device("cpu"))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x))


def test_imagenet_weights_need_the_full_network():
    with pytest.raises(ConfigError, match="needs the full network"):
        build_classifier("resnet50", 3, pretrained="imagenet", width=0.5)
    with pytest.raises(ConfigError, match=r"must be in \(0, 1\]"):
        build_classifier("resnet50", 3, width=1.5)
