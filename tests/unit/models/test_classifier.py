"""WSOLClassifier: parameter counts, logits = fc(GAP(features)), target layer (groups: test_lr_groups)."""

from __future__ import annotations

import pytest
import torch

from fcam.constants import BACKBONES
from fcam.errors import ConfigError
from fcam.models import WSOLClassifier, build_classifier, build_encoder

#: Published classifier sizes (millions, 200 classes), docs/method.md §3.
PAPER_CLASSIFIER_MPARAMS = {"vgg16": 19.6, "inceptionv3": 25.6, "resnet50": 23.9}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("backbone", BACKBONES)
def test_parameter_count_matches_paper(classifiers, backbone):
    millions = n_params(classifiers[backbone]) / 1e6
    assert millions == pytest.approx(PAPER_CLASSIFIER_MPARAMS[backbone], rel=0.02)


def test_exact_parameter_counts(classifiers):
    # torchvision trunk + new layers + (C * 200 + 200) head: pins the architecture down exactly.
    assert {b: n_params(c) for b, c in classifiers.items()} == {
        "resnet50": 23_508_032 + 2048 * 200 + 200,
        "vgg16": 14_714_688 + (512 * 9 * 1024 + 1024) + 1024 * 200 + 200,
        "inceptionv3": 8_965_856 + (768 * 9 + 1) * 1024 + (1024 * 9 + 1) * 1024 + 1024 * 200 + 200,
    }


@pytest.mark.parametrize("backbone", BACKBONES)
def test_logits_are_linear_head_on_average_pooled_deep_map(classifiers, backbone):
    clf = classifiers[backbone]
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        feats, logits = clf.forward_features(x)
        plain = clf(x)
    deep = feats[-1].double()
    expected = deep.mean(dim=(2, 3)) @ clf.fc.weight.double().T + clf.fc.bias.double()
    assert logits.shape == (2, 200)
    scale = expected.abs().max().item()  # float32 sums over C x h x w values: relative tolerance
    torch.testing.assert_close(logits.double(), expected, rtol=0, atol=1e-5 * scale)
    torch.testing.assert_close(plain, logits)
    # CAM identity: the spatial mean of sum_c W_kc A_c plus b_k is the logit.
    cams = torch.einsum("kc,bchw->bkhw", clf.fc.weight.double(), deep)
    torch.testing.assert_close(cams.mean(dim=(2, 3)) + clf.fc.bias.double(), expected)


def test_attributes_and_target_layer(classifiers):
    clf = classifiers["vgg16"]
    assert (clf.backbone, clf.num_classes) == ("vgg16", 200)
    assert clf.target_layer is clf.encoder.target_layer is clf.encoder.relu6
    assert clf.fc.in_features == 1024


def test_head_init(classifiers):
    """The authors' head: Xavier-uniform, std sqrt(2 / (fan_in + fan_out)), zero bias."""
    fc = classifiers["resnet50"].fc
    assert torch.count_nonzero(fc.bias) == 0
    expected = (2 / (fc.in_features + fc.out_features)) ** 0.5
    assert fc.weight.std().item() == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("bad", [0, -3, 2.0, True, "200"])
def test_bad_num_classes(bad):
    with pytest.raises(ConfigError, match="num_classes"):
        build_classifier("resnet50", bad)


def test_wrap_existing_encoder():
    enc = build_encoder("inceptionv3")
    clf = WSOLClassifier(enc, 3)
    assert clf.encoder is enc
    assert clf.fc.out_features == 3
