"""Loading torchvision-format ImageNet state dicts from the torch hub cache (no network)."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

from fcam.constants import BACKBONES
from fcam.errors import CheckpointError, ConfigError
from fcam.models import build_classifier, build_encoder, imagenet_cache_path
from fcam.models.backbones import _ENCODERS

TORCHVISION_BUILDERS = {
    "resnet50": lambda: torchvision.models.resnet50(weights=None),
    "vgg16": lambda: torchvision.models.vgg16(weights=None),
    "inceptionv3": lambda: torchvision.models.inception_v3(weights=None, init_weights=False),
}
FILE_NAMES = {
    "resnet50": "resnet50-0676ba61.pth",
    "vgg16": "vgg16-397923af.pth",
    "inceptionv3": "inception_v3_google-0cc3c7bd.pth",
}


def torchvision_state_dict(backbone: str, seed: int = 123) -> dict[str, torch.Tensor]:
    """A state dict with exactly the keys, shapes and dtypes of the torchvision model, random values.

    The model is built on the meta device (instant, no memory); the keys this project drops (FC,
    auxiliary head, Mixed_7) are kept but shrunk to one element so that the files stay small
    (VGG16's FC layers alone are 500 MB) -- a wrong attempt to load them would fail on the shape.
    """
    with torch.device("meta"):
        model = TORCHVISION_BUILDERS[backbone]()
    dropped = _ENCODERS[backbone].dropped_prefixes
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, meta in model.state_dict().items():
        shape = (1,) if key.startswith(dropped) else meta.shape
        if meta.dtype.is_floating_point:
            state[key] = torch.randn(shape, generator=gen, dtype=meta.dtype)
        else:  # BatchNorm num_batches_tracked
            state[key] = torch.randint(0, 1000, shape, generator=gen, dtype=meta.dtype)
    return state


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def cache_file(torch_home: Path, backbone: str) -> Path:
    return torch_home / "hub" / "checkpoints" / FILE_NAMES[backbone]


def no_network(monkeypatch) -> list[str]:
    calls: list[str] = []

    def fail(url, dst, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    return calls


@pytest.mark.parametrize("backbone", BACKBONES)
def test_cache_path_follows_torch_home(torch_home, backbone):
    weights = _ENCODERS[backbone].imagenet_weights
    assert imagenet_cache_path(weights) == cache_file(torch_home, backbone)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_loads_torchvision_weights_and_keeps_new_layers(torch_home, monkeypatch, backbone):
    calls = no_network(monkeypatch)
    state = torchvision_state_dict(backbone)
    path = cache_file(torch_home, backbone)
    path.parent.mkdir(parents=True)
    torch.save(state, path)

    torch.manual_seed(7)
    random_enc = build_encoder(backbone, pretrained="none")
    torch.manual_seed(7)
    enc = build_encoder(backbone, pretrained="imagenet")
    assert calls == []  # read from the cache, no download attempted

    new_ids = {id(t) for m in enc.new_modules() for t in m.state_dict(keep_vars=True).values()}
    loaded = 0
    random_state = random_enc.state_dict()
    for key, value in enc.state_dict(keep_vars=True).items():
        if id(value) in new_ids:  # new layers: exactly their random init
            assert key not in state
            assert torch.equal(value, random_state[key]), key
        else:  # everything else: identical to the file
            assert torch.equal(value, state[key]), key
            loaded += 1
    expected = [k for k in state if not k.startswith(enc.dropped_prefixes)]
    assert loaded == len(expected)
    assert enc.training


def test_classifier_head_stays_random_with_imagenet_encoder(torch_home, monkeypatch):
    no_network(monkeypatch)
    state = torchvision_state_dict("resnet50")
    path = cache_file(torch_home, "resnet50")
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    clf = build_classifier("resnet50", 5, pretrained="imagenet")
    assert torch.equal(clf.encoder.conv1.weight, state["conv1.weight"])
    assert clf.fc.weight.shape == (5, 2048)
    assert torch.count_nonzero(clf.fc.bias) == 0


@pytest.mark.parametrize("backbone", BACKBONES)
def test_missing_file_without_network_names_the_file(torch_home, monkeypatch, backbone):
    calls = no_network(monkeypatch)
    path = cache_file(torch_home, backbone)
    weights = _ENCODERS[backbone].imagenet_weights
    with pytest.raises(ConfigError) as info:
        build_encoder(backbone, pretrained="imagenet")
    message = str(info.value)
    assert str(path) in message
    assert weights.url in message
    assert "URLError" in message
    assert calls == [weights.url]
    assert not path.exists()


def test_download_goes_to_the_cache_path(torch_home, monkeypatch):
    state = torchvision_state_dict("resnet50")
    seen = {}

    def fake_download(url, dst, hash_prefix, progress=True):
        seen.update(url=url, dst=dst, hash_prefix=hash_prefix)
        torch.save(state, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    enc = build_encoder("resnet50", pretrained="imagenet")
    assert seen == {
        "url": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
        "dst": str(cache_file(torch_home, "resnet50")),
        "hash_prefix": "0676ba61",
    }
    assert torch.equal(enc.layer4[2].conv3.weight, state["layer4.2.conv3.weight"])


def test_file_missing_a_pretrained_key_is_rejected(torch_home, monkeypatch):
    no_network(monkeypatch)
    state = torchvision_state_dict("inceptionv3")
    del state["Mixed_6a.branch3x3.conv.weight"]
    path = cache_file(torch_home, "inceptionv3")
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"missing keys \[Mixed_6a\.branch3x3\.conv\.weight\]"):
        build_encoder("inceptionv3", pretrained="imagenet")


def test_file_with_foreign_keys_is_rejected(torch_home, monkeypatch):
    no_network(monkeypatch)
    state = torchvision_state_dict("vgg16")
    state["features.31.weight"] = torch.zeros(3)
    path = cache_file(torch_home, "vgg16")
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"unexpected keys \[features\.31\.weight\]"):
        build_encoder("vgg16", pretrained="imagenet")


def test_file_with_wrong_shapes_is_rejected(torch_home, monkeypatch):
    no_network(monkeypatch)
    state = torchvision_state_dict("resnet50")
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    path = cache_file(torch_home, "resnet50")
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"do not fit 'resnet50'.*conv1\.weight"):
        build_encoder("resnet50", pretrained="imagenet")


def test_corrupt_cache_file_is_a_checkpoint_error(torch_home, monkeypatch):
    no_network(monkeypatch)
    path = cache_file(torch_home, "resnet50")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"cannot read ImageNet weights .*resnet50-0676ba61\.pth"):
        build_encoder("resnet50", pretrained="imagenet")
