"""Phase-1 learning-rate groups: wsolevaluation's rule, checked on wsolevaluation's parameter names.

wsolevaluation (clovaai/wsolevaluation ``main.py``) splits the classifier's parameters by name::

    _FEATURE_PARAM_LAYER_PATTERNS = {'vgg': ['features.'], 'resnet': ['layer4.', 'fc.'],
                                     'inception': ['Mixed', 'Conv2d_1', 'Conv2d_2', 'Conv2d_3', 'Conv2d_4']}

with ``string_contains_any`` (``util.py``: substring test). For vgg16 and inception_v3 a name
matching a pattern goes to ``param_features`` (lr), the rest to ``param_classifiers``
(lr * lr_classifier_ratio = 10 lr); for resnet50 the roles are swapped. The F-CAM code
(sbelharbi/fcam-wsol ``dlib/process/instantiators.py``, ``_get_model_params_for_opt``) uses the
same rule with ``encoder.``/``classification_head.`` prefixes.

Here fcam's parameter names are mapped explicitly onto the names wsolevaluation's models
(``wsol/resnet.py`` ResNetCam, ``wsol/vgg.py`` VggCam with the 28x28 config, ``wsol/inception.py``
InceptionCam) would have, the mapping is checked to be a bijection onto an independently built
list of those names with matching sizes, and the reference rule applied to the mapped names must
give exactly fcam's "classifier" group.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import torch
import torchvision

from fcam.constants import BACKBONES
from fcam.models import NEW_LAYER_LR_MULT

K = 200  # classes of the session fixture

# --- wsolevaluation's rule, transcribed (main.py, util.py) -------------------------------------
_FEATURE_PARAM_LAYER_PATTERNS = {
    "vgg": ["features."],
    "resnet": ["layer4.", "fc."],
    "inception": ["Mixed", "Conv2d_1", "Conv2d_2", "Conv2d_3", "Conv2d_4"],
}
_WSOL_ARCH = {"resnet50": "resnet50", "vgg16": "vgg16", "inceptionv3": "inception_v3"}


def _string_contains_any(string: str, substrings: list[str]) -> bool:
    return any(s in string for s in substrings)


def reference_is_x10(arch: str, name: str) -> bool:
    """True when wsolevaluation's ``_set_optimizer`` puts ``name`` in ``param_classifiers``."""
    patterns = next(v for k, v in _FEATURE_PARAM_LAYER_PATTERNS.items() if arch.startswith(k))
    hit = _string_contains_any(name, patterns)
    if arch in ("vgg16", "inception_v3"):
        return not hit
    assert arch == "resnet50"
    return hit


# --- wsolevaluation's parameter names and sizes, built independently of fcam ------------------
# wsol/vgg.py configs_dict['cam']['28x28'], laid out by make_layers: conv -> (Conv2d, ReLU), M -> pool.
_VGG_CAM_28 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, 512, 512, 512]


def wsol_parameters(backbone: str) -> dict[str, int]:
    """``{name: numel}`` of wsolevaluation's CAM model with K classes and large_feature_map."""
    if backbone == "resnet50":
        # ResNetCam keeps torchvision's names (conv1, bn1, layer1..4 with downsample.0/1, fc).
        net = torchvision.models.resnet50(weights=None, num_classes=K)
        return {n: p.numel() for n, p in net.named_parameters()}
    if backbone == "vgg16":
        out: dict[str, int] = {}
        index, cin = 0, 3
        for v in _VGG_CAM_28:
            if v == "M":
                index += 1
                continue
            out[f"features.{index}.weight"] = cin * v * 9
            out[f"features.{index}.bias"] = v
            index, cin = index + 2, v
        out |= {"conv6.weight": 512 * 1024 * 9, "conv6.bias": 1024, "fc.weight": 1024 * K, "fc.bias": K}
        return out
    # InceptionCam: torchvision's Conv2d_* and Mixed_5b..Mixed_6e (same attribute names), then
    # SPG_A3_1b = Sequential(Conv2d(768, 1024, 3), ReLU), SPG_A3_2b likewise, SPG_A4 = Conv2d(1024, K, 1).
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    out = {n: p.numel() for n, p in net.named_parameters() if n.startswith(("Conv2d_", "Mixed_5", "Mixed_6"))}
    out |= {
        "SPG_A3_1b.0.weight": 768 * 1024 * 9,
        "SPG_A3_1b.0.bias": 1024,
        "SPG_A3_2b.0.weight": 1024 * 1024 * 9,
        "SPG_A3_2b.0.bias": 1024,
        "SPG_A4.weight": K * 1024,
        "SPG_A4.bias": K,
    }
    return out


# --- the explicit name map fcam -> wsolevaluation ---------------------------------------------
def _vgg_name(name: str) -> str:
    # fcam keeps torchvision's features indices (pool4 = "23" removed); wsolevaluation renumbers.
    m = re.fullmatch(r"encoder\.features\.(\d+)\.(weight|bias)", name)
    if m:
        k = int(m.group(1))
        assert k != 23, "pool4 has no parameters"
        return f"features.{k if k < 23 else k - 1}.{m.group(2)}"
    return {"encoder.conv6.weight": "conv6.weight", "encoder.conv6.bias": "conv6.bias"}.get(name, name)


def _inception_name(name: str) -> str:
    fixed = {
        "encoder.extra.1.weight": "SPG_A3_1b.0.weight",
        "encoder.extra.1.bias": "SPG_A3_1b.0.bias",
        "encoder.extra.4.weight": "SPG_A3_2b.0.weight",
        "encoder.extra.4.bias": "SPG_A3_2b.0.bias",
        "fc.weight": "SPG_A4.weight",  # GAP + linear == 1x1 conv + GAP
        "fc.bias": "SPG_A4.bias",
    }
    return fixed.get(name, name.removeprefix("encoder."))


TO_WSOL: dict[str, Callable[[str], str]] = {
    "resnet50": lambda n: n.removeprefix("encoder."),
    "vgg16": _vgg_name,
    "inceptionv3": _inception_name,
}

#: Size of the 10x group with K = 200 (layer4 of ResNet50 alone is 14,964,736 parameters).
X10_NUMEL = {
    "resnet50": 14_964_736 + 2048 * K + K,
    "vgg16": 512 * 9 * 1024 + 1024 + 1024 * K + K,
    "inceptionv3": (768 * 9 + 1) * 1024 + (1024 * 9 + 1) * 1024 + 1024 * K + K,
}


def _groups_by_name(clf) -> tuple[set[str], set[str]]:
    groups = clf.param_groups(0.0017)
    names = {id(p): n for n, p in clf.named_parameters()}
    return ({names[id(p)] for p in groups[0]["params"]}, {names[id(p)] for p in groups[1]["params"]})


@pytest.mark.parametrize("backbone", BACKBONES)
def test_name_map_is_a_size_preserving_bijection(classifiers, backbone):
    clf = classifiers[backbone]
    ours = {n: p.numel() for n, p in clf.named_parameters()}
    mapped = {TO_WSOL[backbone](n): size for n, size in ours.items()}
    assert len(mapped) == len(ours)  # injective
    assert mapped == wsol_parameters(backbone)  # onto, with the same sizes


@pytest.mark.parametrize("backbone", BACKBONES)
def test_x10_group_is_the_reference_rule(classifiers, backbone):
    clf = classifiers[backbone]
    base, x10 = _groups_by_name(clf)
    arch = _WSOL_ARCH[backbone]
    # fcam -> reference: every fcam name lands in the group the reference puts its image in ...
    assert {n for n in x10 if not reference_is_x10(arch, TO_WSOL[backbone](n))} == set()
    assert {n for n in base if reference_is_x10(arch, TO_WSOL[backbone](n))} == set()
    # ... and reference -> fcam: the reference's 10x names are exactly the images of fcam's group.
    ref_x10 = {n for n in wsol_parameters(backbone) if reference_is_x10(arch, n)}
    assert ref_x10 == {TO_WSOL[backbone](n) for n in x10}
    sizes = dict(clf.named_parameters())
    assert sum(sizes[n].numel() for n in x10) == X10_NUMEL[backbone]
    assert sum(wsol_parameters(backbone)[n] for n in ref_x10) == X10_NUMEL[backbone]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_param_groups_cover_every_parameter_once(classifiers, backbone):
    clf = classifiers[backbone]
    groups = clf.param_groups(0.0017)
    assert [g["name"] for g in groups] == ["features", "classifier"]
    assert groups[0]["lr"] == 0.0017
    assert groups[1]["lr"] == pytest.approx(0.0017 * NEW_LAYER_LR_MULT)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in clf.parameters()}


def test_resnet50_trains_layer4_at_10x(classifiers):
    clf = classifiers["resnet50"]
    _, x10 = _groups_by_name(clf)
    assert x10 == {n for n, _ in clf.named_parameters() if n.startswith(("encoder.layer4.", "fc."))}
    assert clf.encoder.fast_lr_modules() == [clf.encoder.layer4]
    assert clf.encoder.new_modules() == []  # layer4 is still loaded from ImageNet


def test_param_groups_drive_an_optimizer(classifiers):
    clf = classifiers["resnet50"]
    opt = torch.optim.SGD(clf.param_groups(0.01), lr=0.01, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.01, pytest.approx(0.1)]
