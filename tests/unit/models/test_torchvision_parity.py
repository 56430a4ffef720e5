"""fcam's own backbones against the torchvision-built encoders they replace.

Until fcam had :mod:`fcam.models.blocks`, its encoders were cut out of torchvision models. The
``legacy_*`` builders below rebuild those encoders exactly as that code did (torchvision's
``resnet50``, ``vgg.make_layers(cfgs["D"])`` and ``inception_v3``, re-strided and re-padded the
same way, with the same forward), so each check compares against torchvision itself:

(a) state-dict keys, order, shapes and dtypes are equal (so ImageNet files load key for key);
(b) with the same weights and BatchNorm statistics, every feature map is bitwise equal (eval mode;
    odd and rectangular sizes exercise the padding and ceil-mode pooling);
(c) with the same seed, the initial weights are bitwise equal and the global RNG ends in the same
    state (so the classifier head and dropout draw the same numbers as before);
(d) importing every fcam module, building every backbone and running a classifier does not import
    torchvision (a fresh interpreter).

torchvision is a test-only import here.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from fcam.models import InceptionV3Encoder, ResNet50Encoder, VGG16Encoder
from fcam.models.blocks import InceptionB
from fcam.models.pretrained import IMAGENET_WEIGHTS

REPO = Path(__file__).resolve().parents[3]

# --- the encoders as fcam built them from torchvision (fcam/models/backbones.py before) --------


class _Legacy(nn.Module):
    """A container whose forward is given: the encoders differ only in their children."""

    def __init__(self, forward: Callable[[nn.Module, Tensor], list[Tensor]]) -> None:
        super().__init__()
        self._forward = forward

    def forward(self, x: Tensor) -> list[Tensor]:
        return self._forward(self, x)


def legacy_resnet50() -> nn.Module:
    net = torchvision.models.resnet50(weights=None)
    for layer in (net.layer3, net.layer4):
        layer[0].conv2.stride = (1, 1)
        layer[0].downsample[0].stride = (1, 1)

    def forward(m: nn.Module, x: Tensor) -> list[Tensor]:
        f0 = m.relu(m.bn1(m.conv1(x)))
        f1 = m.layer1(m.maxpool(f0))
        f2 = m.layer2(f1)
        f3 = m.layer3(f2)
        return [f0, f1, f2, f3, m.layer4(f3)]

    enc = _Legacy(forward)
    enc.conv1, enc.bn1, enc.relu, enc.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
    enc.layer1, enc.layer2, enc.layer3, enc.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
    return enc


def legacy_vgg16() -> nn.Module:
    full = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"], batch_norm=False)

    def forward(m: nn.Module, x: Tensor) -> list[Tensor]:
        feats = []
        for name, module in m.features.named_children():
            x = module(x)
            if name in ("8", "15"):
                feats.append(x)
        return [*feats, m.relu6(m.conv6(x))]

    enc = _Legacy(forward)
    enc.features = nn.Sequential(
        OrderedDict((n, c) for n, c in full.named_children() if n not in ("23", "30"))
    )
    enc.conv6 = nn.Conv2d(512, 1024, kernel_size=3, padding=1)
    enc.relu6 = nn.ReLU(inplace=False)
    for m in enc.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return enc


class _LegacyInceptionBStride1(nn.Module):
    """fcam's former wrapper of torchvision's InceptionB with stride 1 and padding 1."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.branch3x3 = block.branch3x3
        self.branch3x3dbl_1 = block.branch3x3dbl_1
        self.branch3x3dbl_2 = block.branch3x3dbl_2
        self.branch3x3dbl_3 = block.branch3x3dbl_3
        for conv_block in (self.branch3x3, self.branch3x3dbl_3):
            conv_block.conv.stride = (1, 1)
            conv_block.conv.padding = (1, 1)

    def forward(self, x: Tensor) -> Tensor:
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pool = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([self.branch3x3(x), branch3x3dbl, pool], dim=1)


def legacy_inceptionv3(geometry: str = "fcam-wsol") -> nn.Module:
    net = torchvision.models.inception_v3(
        weights=None, aux_logits=False, init_weights=False, transform_input=False
    )
    net.Conv2d_1a_3x3.conv.padding = (1, 1)
    if geometry == "fcam-wsol":
        net.Conv2d_2a_3x3.conv.padding = (1, 1)
        net.Conv2d_4a_3x3.conv.padding = (1, 1)

    def forward(m: nn.Module, x: Tensor) -> list[Tensor]:
        f0 = m.Conv2d_2b_3x3(m.Conv2d_2a_3x3(m.Conv2d_1a_3x3(x)))
        f1 = m.Conv2d_3b_1x1(m.maxpool1(f0))
        f2 = m.Mixed_5c(m.Mixed_5b(m.maxpool2(m.Conv2d_4a_3x3(f1))))
        f3 = m.Mixed_6e(m.Mixed_6d(m.Mixed_6c(m.Mixed_6b(m.Mixed_6a(m.Mixed_5d(f2))))))
        return [f0, f1, f2, f3, m.extra(f3)]

    enc = _Legacy(forward)
    enc.Conv2d_1a_3x3, enc.Conv2d_2a_3x3, enc.Conv2d_2b_3x3 = (
        net.Conv2d_1a_3x3,
        net.Conv2d_2a_3x3,
        net.Conv2d_2b_3x3,
    )
    enc.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    enc.Conv2d_3b_1x1, enc.Conv2d_4a_3x3 = net.Conv2d_3b_1x1, net.Conv2d_4a_3x3
    enc.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    enc.Mixed_5b, enc.Mixed_5c, enc.Mixed_5d = net.Mixed_5b, net.Mixed_5c, net.Mixed_5d
    enc.Mixed_6a = _LegacyInceptionBStride1(net.Mixed_6a)
    enc.Mixed_6b, enc.Mixed_6c, enc.Mixed_6d, enc.Mixed_6e = (
        net.Mixed_6b,
        net.Mixed_6c,
        net.Mixed_6d,
        net.Mixed_6e,
    )
    enc.extra = nn.Sequential(
        nn.Dropout(0.5),
        nn.Conv2d(768, 1024, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Conv2d(1024, 1024, kernel_size=3, padding=1),
        nn.ReLU(inplace=False),
    )
    for m in enc.extra.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return enc


# (name, fcam builder, legacy builder); InceptionV3 in both geometries.
PAIRS: dict[str, tuple[Callable[[], nn.Module], Callable[[], nn.Module]]] = {
    "resnet50": (ResNet50Encoder, legacy_resnet50),
    "vgg16": (VGG16Encoder, legacy_vgg16),
    "inceptionv3": (InceptionV3Encoder, legacy_inceptionv3),
    "inceptionv3-wsolevaluation": (
        lambda: InceptionV3Encoder(geometry="wsolevaluation"),
        lambda: legacy_inceptionv3("wsolevaluation"),
    ),
}


def build_pair(name: str, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """(fcam's, legacy) encoder, each built right after ``torch.manual_seed(seed)``."""
    new, old = PAIRS[name]
    torch.manual_seed(seed)
    fcam_enc = new()
    torch.manual_seed(seed)
    return fcam_enc, old()


@pytest.fixture(scope="module")
def pairs() -> dict[str, tuple[nn.Module, nn.Module]]:
    """Both encoders of each backbone, eval mode, sharing seeded random weights and BN statistics.

    BatchNorm's statistics and affine parameters and the conv biases are randomised (weight and
    running variance in [0.5, 2]) so that eval-mode BN is not the identity; the conv weights keep
    their init so that activations stay finite.
    """
    out = {}
    gen = torch.Generator().manual_seed(1)
    for name in PAIRS:
        fcam_enc, legacy = build_pair(name)
        with torch.no_grad():
            for m in legacy.modules():
                if isinstance(m, nn.BatchNorm2d):
                    for t in (m.weight, m.running_var):
                        t.copy_(0.5 + 1.5 * torch.rand(t.shape, generator=gen))
                    for t in (m.bias, m.running_mean):
                        t.copy_(0.1 * torch.randn(t.shape, generator=gen))
                elif isinstance(m, nn.Conv2d) and m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
        fcam_enc.load_state_dict(legacy.state_dict())  # strict: raises on any key or shape difference
        out[name] = (fcam_enc.eval(), legacy.eval())
    return out


def shapes(module: nn.Module) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    return [(k, tuple(v.shape), v.dtype) for k, v in module.state_dict().items()]


# --- (a) keys and shapes ------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PAIRS))
def test_state_dict_keys_order_and_shapes_equal_torchvision_built(name):
    with torch.device("meta"):  # structure only: no memory, no init time
        fcam_enc, legacy = PAIRS[name][0](), PAIRS[name][1]()
    assert shapes(fcam_enc) == shapes(legacy)
    # Same modules too (types aside): names, strides, paddings, pooling and ReLU flags.
    assert [n for n, _ in fcam_enc.named_modules()] == [n for n, _ in legacy.named_modules()]
    for (n, a), (_, b) in zip(fcam_enc.named_modules(), legacy.named_modules(), strict=True):
        if isinstance(a, nn.Conv2d | nn.MaxPool2d | nn.BatchNorm2d | nn.ReLU | nn.Dropout):
            assert type(a) is type(b), n
            assert a.extra_repr() == b.extra_repr(), n


@pytest.mark.parametrize("name", ["resnet50", "vgg16", "inceptionv3"])
def test_torchvision_model_state_dict_loads_key_for_key(name):
    """torchvision's whole model (as its ImageNet files hold it) minus the dropped keys is exactly
    fcam's encoder minus its new layers."""
    builders = {
        "resnet50": lambda: torchvision.models.resnet50(weights=None),
        "vgg16": lambda: torchvision.models.vgg16(weights=None),
        "inceptionv3": lambda: torchvision.models.inception_v3(weights=None, init_weights=False),
    }
    with torch.device("meta"):
        full, enc = builders[name](), PAIRS[name][0]()
    new = {f"{n}.{k}" for n, m in enc.named_modules() if m in enc.new_modules() for k in m.state_dict()}
    kept = [(k, s) for k, s, _ in shapes(full) if not k.startswith(enc.dropped_prefixes)]
    assert kept == [(k, s) for k, s, _ in shapes(enc) if k not in new]


# --- (b) forward equality ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PAIRS))
@pytest.mark.parametrize(
    ("batch", "size"), [(2, (36, 36)), (2, (40, 40)), (1, (37, 45))], ids=["36", "40", "37x45"]
)
def test_features_equal_torchvision_built(pairs, name, batch, size):
    fcam_enc, legacy = pairs[name]
    x = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got, expected = fcam_enc(x), legacy(x)
    assert len(got) == len(expected) == len(fcam_enc.out_channels)
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a.shape == b.shape, i
        assert torch.isfinite(b).all(), i
        assert b.abs().max() > 0, i  # a meaningful comparison
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=lambda m, i=i: f"feature {i}: {m}")


@pytest.mark.parametrize("name", list(PAIRS))
def test_features_equal_torchvision_built_at_224(pairs, name):
    fcam_enc, legacy = pairs[name]
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got, expected = fcam_enc(x), legacy(x)
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=lambda m, i=i: f"feature {i}: {m}")


def test_inception_b_stride_2_equals_torchvision():
    """The standard (reducing) InceptionB, which fcam does not use, against torchvision's."""
    torch.manual_seed(4)
    ours = InceptionB(288).eval()
    torch.manual_seed(4)
    ref = torchvision.models.inception.InceptionB(288).eval()
    assert shapes(ours) == shapes(ref)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(1, 288, 17, 13)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)
    assert ours(x).shape == (1, 768, 8, 6)


# --- (c) initialisation ------------------------------------------------------------------------


#: Layers fcam adds to torchvision's: since the authors' init, not compared with the old one.
_ADDED = ("conv6.", "extra.")


@pytest.mark.parametrize("name", list(PAIRS))
def test_same_seed_gives_the_same_init_and_rng_state(name):
    """torchvision's layers start as they did; the added layers take the authors' init since."""
    torch.manual_seed(5)
    fcam_enc = PAIRS[name][0]()
    rng_after_fcam = torch.get_rng_state()
    torch.manual_seed(5)
    legacy = PAIRS[name][1]()
    if not fcam_enc.new_modules():  # ResNet50 adds no layer: the random stream is left as before
        assert torch.equal(rng_after_fcam, torch.get_rng_state()), "different number of random draws"
    expected = legacy.state_dict()
    for key, value in fcam_enc.state_dict().items():
        if not key.startswith(_ADDED):
            assert torch.equal(value, expected[key]), key


def test_he_init_statistics():
    """The documented init, independently of torchvision: He-normal fan-out convs (std
    sqrt(2 / (C_out k_h k_w))), zero conv biases, BN weight 1 and bias 0."""
    torch.manual_seed(6)
    resnet, vgg, inception = ResNet50Encoder(), VGG16Encoder(), InceptionV3Encoder()
    for conv in (resnet.layer4[0].conv2, resnet.conv1, vgg.features[0]):  # torchvision's layers
        std = math.sqrt(2 / (conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]))
        w = conv.weight.detach()
        assert w.mean().abs() < 4 * std / math.sqrt(w.numel())
        assert w.std().item() == pytest.approx(std, rel=0.1)
        assert conv.bias is None or not conv.bias.any()
    bns = [m for m in resnet.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(bool((m.weight == 1).all() and (m.bias == 0).all()) for m in bns)
    # The layers fcam adds, as the authors initialise them: Inception's convs Xavier-uniform with
    # zero bias; VGG's conv6 PyTorch's default (kaiming-uniform, a = sqrt(5): bound 1 / sqrt(fan_in)).
    extra = inception.extra[4]
    fan_in, fan_out = extra.in_channels * 9, extra.out_channels * 9
    assert extra.weight.std().item() == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.1)
    assert not extra.bias.any()
    bound = 1 / math.sqrt(vgg.conv6.in_channels * 9)
    assert vgg.conv6.weight.abs().max().item() <= bound
    assert vgg.conv6.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)


# --- ImageNet weight files ----------------------------------------------------------------------


def test_imagenet_weights_table_equals_torchvision():
    models = torchvision.models
    tv = {
        "resnet50": models.ResNet50_Weights.IMAGENET1K_V1,
        "vgg16": models.VGG16_Weights.IMAGENET1K_V1,
        "inceptionv3": models.Inception_V3_Weights.IMAGENET1K_V1,
    }
    assert set(IMAGENET_WEIGHTS) == set(tv)
    for backbone, weights in IMAGENET_WEIGHTS.items():
        assert weights.url == tv[backbone].url
        assert weights.file_name == weights.url.rsplit("/", 1)[1]


# --- (d) no torchvision at run time --------------------------------------------------------------

_NO_TORCHVISION = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    import torch
    import fcam
    assert fcam.__file__.startswith(sys.argv[1]), fcam.__file__
    for info in pkgutil.walk_packages(fcam.__path__, "fcam."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    from fcam.models import InceptionV3Encoder, build_classifier
    torch.set_num_threads(1)
    for backbone in ("resnet50", "vgg16", "inceptionv3"):
        with torch.no_grad():
            logits = build_classifier(backbone, 3).eval()(torch.randn(1, 3, 32, 32))
        assert logits.shape == (1, 3)
    InceptionV3Encoder(geometry="wsolevaluation")
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "torchvision")
    print("torchvision modules:", loaded)
    sys.exit(1 if loaded else 0)
    """
)


def test_fcam_never_imports_torchvision():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _NO_TORCHVISION, str(REPO / "fcam")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
