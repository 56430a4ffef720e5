"""Torch dataset of a WSOL split: images, labels, and optionally cached low-resolution CAMs.

The transforms are those of wsolevaluation and F-CAM (docs/method.md §6): for training, resize to
``resize_size`` x ``resize_size`` (aspect not kept), random crop ``crop_size``, horizontal flip with
probability 0.5; for evaluation, resize to ``crop_size`` x ``crop_size``. F-CAM's decoder also needs
the un-normalised image (for the dense CRF loss) and the classifier's CAM (for the seeds), and both
must follow exactly the geometric transform of the network's input.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from fcam.constants import IMAGENET_MEAN, IMAGENET_STD
from fcam.data.images import read_image_rgb
from fcam.data.metadata import SplitMetadata
from fcam.errors import ConfigError, DataError

__all__ = ["WSOLDataset", "make_loader", "read_image_rgb"]


def _check_size(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"WSOLDataset: {name} must be a positive integer, got {value!r}")
    return value


class WSOLDataset(Dataset):
    """Images of one split with their labels and, for F-CAM, their cached CAMs.

    Each item is a dict:

    - ``image``: (3, c, c) float32, RGB normalised with the ImageNet mean and std;
    - ``raw``: (3, c, c) float32 RGB in [0, 255], the same pixels un-normalised (dense CRF loss);
    - ``label``: int64 scalar tensor, the class;
    - ``index``: int, the position in ``meta.image_ids``;
    - ``cam``: (c, c) float32 in [0, 1], only when ``cams`` is given;

    with c = ``crop_size``. Images are resized with bilinear interpolation with antialiasing
    (like PIL's, used by the reference code).

    How the cached CAM follows the random crop and flip: ``cams[i]`` is the (h, w) low-resolution
    CAM the frozen classifier produced for image i resized to ``resize_size`` (train) or
    ``crop_size`` (eval), without crop or flip. For a training item it is upsampled bilinearly
    (``align_corners=False``) to ``resize_size`` x ``resize_size``, i.e. onto the pixel grid of the
    resized image, and then the crop window (top, left) and the flip drawn for this item are applied
    to the image, the raw image and the CAM together, so that pixel (y, x) of all three shows the
    same point of the scene. For an eval item the CAM is upsampled to ``crop_size``.

    Randomness is a function of (seed, epoch, index) only: each item draws its crop and flip from
    ``np.random.default_rng([seed, epoch, index])``, so results do not depend on the number of
    DataLoader workers or on the order of the items. Call :meth:`set_epoch` before each epoch
    (with ``persistent_workers=True`` the workers keep the epoch they were started with).

    Args:
        meta: the split (:func:`fcam.data.metadata.read_split`).
        train: training transform (random crop and flip) or evaluation transform.
        resize_size: side of the resized image before the random crop (train only).
        crop_size: side of the output.
        cams: optional (N, h, w) float tensor in [0, 1], one CAM per image of ``meta``, in order.
        seed: non-negative seed of the random crops and flips.

    Raises:
        ConfigError: a size or the seed is invalid, or ``crop_size > resize_size`` for training.
        DataError: ``cams`` does not have one finite map in [0, 1] per image.
    """

    def __init__(
        self,
        meta: SplitMetadata,
        *,
        train: bool,
        resize_size: int,
        crop_size: int,
        cams: Tensor | None = None,
        seed: int = 0,
    ) -> None:
        self.meta = meta
        self.train = train
        self.resize_size = _check_size("resize_size", resize_size)
        self.crop_size = _check_size("crop_size", crop_size)
        if train and crop_size > resize_size:
            raise ConfigError(f"WSOLDataset: crop_size {crop_size} exceeds resize_size {resize_size}")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"WSOLDataset: seed must be a non-negative integer, got {seed!r}")
        self.seed = seed
        self.epoch = 0
        if cams is not None:
            n = len(meta.image_ids)
            if cams.ndim != 3 or cams.shape[0] != n or not cams.is_floating_point():
                raise DataError(
                    f"cached CAMs: expected a float tensor (N={n}, h, w) matching {meta.root}, "
                    f"got {tuple(cams.shape)} {cams.dtype}"
                )
            bad = ~torch.isfinite(cams) | (cams < 0) | (cams > 1)
            if bad.any():
                first = int(bad.flatten(1).any(dim=1).nonzero()[0])
                raise DataError(
                    f"cached CAMs: map {first} ({meta.image_ids[first]}) has values outside [0, 1] or NaN"
                )
        self.cams = cams
        self._mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)

    def set_epoch(self, epoch: int) -> None:
        """Select the crops and flips of ``epoch`` (a non-negative integer)."""
        if epoch < 0:
            raise ConfigError(f"WSOLDataset: epoch must be non-negative, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.meta.image_ids)

    def crop_params(self, index: int) -> tuple[int, int, bool]:
        """The (top, left, flip) of item ``index`` at the current epoch (training transform)."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        span = self.resize_size - self.crop_size + 1
        top, left = (int(v) for v in rng.integers(0, span, size=2))
        return top, left, bool(rng.random() < 0.5)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_id = self.meta.image_ids[index]
        rgb = read_image_rgb(self.meta.path(image_id))
        side = self.resize_size if self.train else self.crop_size
        raw = torch.from_numpy(rgb).permute(2, 0, 1).float()[None]
        if raw.shape[-2:] != (side, side):
            raw = F.interpolate(raw, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        planes = [raw.clamp_(0.0, 255.0)[0]]
        if self.cams is not None:
            cam = self.cams[index].float()[None, None]
            cam = F.interpolate(cam, size=(side, side), mode="bilinear", align_corners=False)
            planes.append(cam[0].clamp_(0.0, 1.0))
        # Stack image and CAM so that one crop and one flip move them together.
        stack = torch.cat(planes)
        if self.train:
            top, left, flip = self.crop_params(index)
            c = self.crop_size
            stack = stack[:, top : top + c, left : left + c]
            if flip:
                stack = stack.flip(-1)
        stack = stack.contiguous()
        raw_out = stack[:3]
        item: dict[str, Any] = {
            "image": (raw_out / 255.0 - self._mean) / self._std,
            "raw": raw_out,
            "label": torch.tensor(self.meta.labels[image_id], dtype=torch.int64),
            "index": index,
        }
        if self.cams is not None:
            item["cam"] = stack[3]
        return item


def make_loader(
    dataset: WSOLDataset,
    *,
    batch_size: int,
    workers: int = 0,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> torch.utils.data.DataLoader:
    """A loader of ``dataset``: ``workers`` processes decode and transform images beside the job.

    The batches do not depend on ``workers``: each item's crop and flip come from its own seeded
    generator (:meth:`WSOLDataset.crop_params`) and the order from ``generator``, drawn in the job.

    ``drop_last`` drops the last, incomplete batch (training: every step sees ``batch_size``
    images, as BatchNorm's statistics want) except when the split is smaller than one batch: then
    the whole split is the one batch. Dropping it would train on nothing while the epoch still
    counted (a split of a few images, e.g. from a subset mirror).
    """
    from torch.utils.data import DataLoader

    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        drop_last=drop_last and len(dataset) >= batch_size,
        num_workers=workers,
        pin_memory=workers > 0 and torch.cuda.is_available(),
    )

