"""Loading torchvision's ImageNet weights into the WSOL encoders, from the torch hub cache.

The weights are torchvision's ``IMAGENET1K_V1`` files (the ones the WSOL literature used), listed in
:data:`IMAGENET_WEIGHTS` and looked up where ``torch.hub.load_state_dict_from_url`` (and so
torchvision) keeps them: ``torch.hub.get_dir()/checkpoints/<file>`` (``$TORCH_HOME/hub/checkpoints``
when TORCH_HOME is set). A missing file is downloaded (hash-checked) when the network allows;
otherwise the error names the URL and the exact path to put the file at. torchvision itself is not
imported (its import costs every job ~1.8 s of CPU).
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import torch

from fcam.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from fcam.models.backbones import Encoder

__all__ = ["IMAGENET_WEIGHTS", "ImageNetWeights", "imagenet_cache_path", "load_imagenet_weights"]

log = logging.getLogger(__name__)

_MAX_KEYS_SHOWN = 5


@dataclass(frozen=True)
class ImageNetWeights:
    """One ImageNet state-dict file of torchvision.

    Attributes:
        url: where torchvision downloads it from.
        file_name: its name in the torch hub cache, the last part of ``url``; the 8 hex digits
            before ``.pth`` are the start of its sha256 (checked on download).
    """

    url: str
    file_name: str


#: torchvision's ``IMAGENET1K_V1`` weights of each backbone, copied from torchvision 0.29
#: (``torchvision/models/resnet.py`` ``ResNet50_Weights``, ``vgg.py`` ``VGG16_Weights``,
#: ``inception.py`` ``Inception_V3_Weights``, ``IMAGENET1K_V1.url``; the file name is the URL's last
#: part). ``tests/unit/models/test_pretrained.py`` checks them against the installed torchvision.
IMAGENET_WEIGHTS: Final[dict[str, ImageNetWeights]] = {
    "resnet50": ImageNetWeights(
        "https://download.pytorch.org/models/resnet50-0676ba61.pth", "resnet50-0676ba61.pth"
    ),
    "vgg16": ImageNetWeights("https://download.pytorch.org/models/vgg16-397923af.pth", "vgg16-397923af.pth"),
    "inceptionv3": ImageNetWeights(
        "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
        "inception_v3_google-0cc3c7bd.pth",
    ),
}


def imagenet_cache_path(weights: ImageNetWeights) -> Path:
    """Where torch hub caches ``weights``: ``torch.hub.get_dir()/checkpoints/<file name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / weights.file_name


def _download(weights: ImageNetWeights, path: Path, backbone: str) -> None:
    """Download ``weights`` to ``path`` (atomically, hash-checked) or raise a ConfigError saying where
    to put the file by hand."""
    match = torch.hub.HASH_REGEX.search(path.name)
    hash_prefix = match.group(1) if match else None
    log.info("downloading ImageNet weights for %s from %s to %s", backbone, weights.url, path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # download_url_to_file writes a temp file and renames it: no partial file is left behind.
        torch.hub.download_url_to_file(weights.url, str(path), hash_prefix, progress=False)
    except (OSError, RuntimeError) as err:  # URLError/HTTPError/socket errors are OSErrors; bad hash
        raise ConfigError(
            f"ImageNet weights for backbone {backbone!r} are not cached and could not be downloaded "
            f"from {weights.url} ({type(err).__name__}: {err}). Download that file and save it as "
            f"{path} (torch.hub.get_dir()/checkpoints; set TORCH_HOME to use another cache), "
            f"or use pretrained='none'"
        ) from err


def _shown(keys: list[str] | set[str]) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - _MAX_KEYS_SHOWN} more)" if len(keys) > _MAX_KEYS_SHOWN else ""
    return ", ".join(keys[:_MAX_KEYS_SHOWN]) + more


def _new_layer_keys(encoder: Encoder) -> set[str]:
    """State-dict keys of the encoder's new (non-torchvision) layers."""
    new_ids = {id(m) for m in encoder.new_modules()}
    return {
        f"{name}.{key}"
        for name, module in encoder.named_modules()
        if id(module) in new_ids
        for key in module.state_dict()
    }


def load_imagenet_weights(encoder: Encoder) -> None:
    """Copy torchvision's ImageNet weights into ``encoder`` in place; new layers keep their init.

    The state dict is loaded with ``strict=False`` and then checked: the only keys the file may
    lack are those of :meth:`Encoder.new_modules`, and the only keys the encoder may lack start with
    :attr:`Encoder.dropped_prefixes` (FC head, auxiliary head, Mixed_7).

    Args:
        encoder: a freshly built encoder.

    Raises:
        ConfigError: the file is not cached and cannot be downloaded (names the file and where).
        CheckpointError: the cached file is unreadable or its keys/shapes do not fit the encoder.
    """
    weights = encoder.imagenet_weights
    path = imagenet_cache_path(weights)
    if not path.is_file():
        _download(weights, path, encoder.backbone)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise CheckpointError(
            f"cannot read ImageNet weights {path} for backbone {encoder.backbone!r}: "
            f"{' '.join(str(err).split())}; "
            f"delete it to download it again from {weights.url}"
        ) from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, expected a state dict")
    try:
        result = encoder.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatch; torch's message spans several lines
        detail = " ".join(str(err).split())
        raise CheckpointError(f"ImageNet weights {path} do not fit {encoder.backbone!r}: {detail}") from err
    missing = set(result.missing_keys) - _new_layer_keys(encoder)
    unexpected = {k for k in result.unexpected_keys if not k.startswith(encoder.dropped_prefixes)}
    if missing or unexpected:
        raise CheckpointError(
            f"ImageNet weights {path} do not fit {encoder.backbone!r}: "
            f"missing keys [{_shown(missing)}], unexpected keys [{_shown(unexpected)}]"
        )
    log.info(
        "loaded ImageNet weights %s into %s (%d tensors; new layers left random: %d tensors)",
        path,
        encoder.backbone,
        len(state) - len(result.unexpected_keys),
        len(result.missing_keys),
    )
