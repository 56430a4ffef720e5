"""Pseudo-labels for the decoder: seed pixels sampled from the baseline CAM (docs/method.md §5).

F-CAM (Belharbi et al., WACV 2022, Sec. 3) trains its decoder on a few pixels per image whose
label is trusted: a foreground pixel drawn from the strongly activated part of the CAM ``C``
and a background pixel drawn from its weakest part, re-drawn at every iteration.

- Foreground region ``C+``: pixels with ``uint8(255 C) > tau``, ``tau`` Otsu's threshold of the
  map clipped to [1, 254], eroded once with an ``erosion x erosion`` square (the un-eroded
  region is kept where the erosion would empty it).
- Background region ``C-``: the ``bg_fraction`` of pixels with the lowest ``C`` (not the
  complement of ``C+``); ``bg_ties`` says what happens to pixels tied at the cut.
- Seeds: ``n_fg`` pixels drawn uniformly from ``C+`` and ``n_bg`` from ``C-``, each dilated to
  a ``dilation x dilation`` patch; pixels claimed by both are dropped, the rest are ignored.

Everything is batched: one histogram for the whole batch (bincount with per-image offsets),
erosion and dilation as max-pooling, sampling as top-k of random keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["BG_TIES", "IGNORE", "otsu_thresholds", "sample_seeds", "seed_regions"]

#: Label of unlabelled pixels in a seed map (1 = foreground seed, 0 = background seed).
IGNORE = -1

#: Tie rules of the background region ``C-`` (see :func:`seed_regions`).
BG_TIES = ("include", "exact")

_LEVELS = 256


def otsu_thresholds(maps_u8: Tensor) -> Tensor:
    """Otsu's threshold of each row of a batch of 8-bit maps (Otsu, IEEE TSMC 1979).

    The threshold ``t`` maximises the between-class variance ``w1 w2 (m1 - m2)^2`` of the split
    {values <= t} / {values > t} (w: pixel counts, m: class means). Same semantics as
    ``skimage.filters.threshold_otsu`` on uint8 data: only splits with both classes non-empty
    are candidates, ties go to the lowest ``t`` (numpy's and torch's argmax both return the first
    maximum, and the variances are computed with the same float64 operations on exact integer
    sums, so they are bit-identical), and a constant row returns its value.

    Args:
        maps_u8: (B, N) uint8.

    Returns:
        (B,) int64 in [0, 255]: foreground is ``maps_u8 > threshold``.

    Raises:
        ValueError: not a 2-D uint8 tensor, or N = 0.
    """
    if maps_u8.dtype != torch.uint8 or maps_u8.ndim != 2 or maps_u8.shape[1] == 0:
        raise ValueError(
            f"maps_u8 must be a (B, N) uint8 tensor with N > 0, got {maps_u8.dtype} {tuple(maps_u8.shape)}"
        )
    n_maps = maps_u8.shape[0]
    device = maps_u8.device
    values = maps_u8.to(torch.int64)
    offsets = torch.arange(n_maps, device=device)[:, None] * _LEVELS
    counts = torch.bincount((values + offsets).reshape(-1), minlength=n_maps * _LEVELS)
    counts = counts.reshape(n_maps, _LEVELS).to(torch.float64)
    levels = torch.arange(_LEVELS, device=device, dtype=torch.float64)
    moments = counts * levels
    # Class 1 = values <= t, class 2 = values >= t + 1, for t = 0..254.
    weight1 = counts.cumsum(1)[:, :-1]
    weight2 = counts.flip(1).cumsum(1).flip(1)[:, 1:]
    sum1 = moments.cumsum(1)[:, :-1]
    sum2 = moments.flip(1).cumsum(1).flip(1)[:, 1:]
    valid = (weight1 > 0) & (weight2 > 0)
    mean1 = sum1 / weight1.clamp(min=1.0)
    mean2 = sum2 / weight2.clamp(min=1.0)
    variance = torch.where(valid, weight1 * weight2 * (mean1 - mean2) ** 2, -1.0)
    threshold = variance.argmax(dim=1)
    low = values.amin(dim=1)
    return torch.where(low == values.amax(dim=1), low, threshold)


def seed_regions(
    cams: Tensor, *, bg_fraction: float = 0.1, erosion: int = 11, bg_ties: str = "include"
) -> tuple[Tensor, Tensor]:
    """Foreground and background sampling regions ``C+`` and ``C-`` of each CAM.

    ``C-`` is built from ``n = floor(bg_fraction * H * W)`` and the ``n``-th smallest value
    ``c`` of the map; ``bg_ties`` decides which pixels tied at ``c`` belong to it:

    - ``"include"``: every pixel with value ``<= c``. With ties at the cut the region is larger
      than the fraction: a ReLU'd or clipped CAM with half its pixels at exactly 0 gives half the
      image, and the background seeds are drawn uniformly over all of it.
    - ``"exact"``: exactly ``n`` pixels, the first ``n`` of the map sorted by ascending value with
      ties in raster (row-major) order, i.e. all pixels below ``c`` plus the first tied pixels in
      raster order. This is the F-CAM code's choice (fcam-wsol ``dlib/cams/selflearning.py``,
      ``GetFastSeederSLFCAMS.forward``: ``torch.sort(cam.view(h * w), descending=False)`` per
      image, then the first ``int(min_p * h * w)`` indices). That sort is not requested stable,
      but on the GPU the reference ran on, a sort of more than 4096 elements is a radix sort,
      which is stable, so ties come out in raster order; many ties then put ``C-`` (and every
      background seed) in the top rows of the image. Implemented without a sort: the tied
      pixels are ranked by a cumulative sum in raster order.

    Args:
        cams: (B, H, W) float in [0, 1], min-max normalised CAMs at crop resolution.
        bg_fraction: fraction n- of the pixels forming ``C-``, in [0, 1].
        erosion: side of the square erosion of ``C+``, odd >= 1 (1: no erosion). Pixels outside
            the image do not erode the region (borders are not eaten away).
        bg_ties: one of :data:`BG_TIES`, see above.

    Returns:
        ``(fg_region, bg_region)``, two (B, H, W) bool tensors on the device of ``cams``. A
        constant CAM (max == min) or one with a NaN gives two empty regions: no seeds at all.

    Raises:
        ValueError: bad shape, ``bg_fraction``, ``erosion`` or ``bg_ties``.
    """
    if cams.ndim != 3 or cams.numel() == 0:
        raise ValueError(f"cams must be a non-empty (B, H, W) tensor, got {tuple(cams.shape)}")
    if not 0.0 <= bg_fraction <= 1.0:
        raise ValueError(f"bg_fraction must be in [0, 1], got {bg_fraction}")
    if erosion < 1 or erosion % 2 == 0:
        raise ValueError(f"erosion must be an odd size >= 1, got {erosion}")
    if bg_ties not in BG_TIES:
        raise ValueError(f"bg_ties must be one of {', '.join(BG_TIES)}, got {bg_ties!r}")
    n_maps, height, width = cams.shape
    flat = cams.detach().flatten(1)
    broken = torch.isnan(flat).any(dim=1)
    flat = torch.nan_to_num(flat, nan=0.0).clamp(0.0, 1.0)
    usable = (flat.amax(dim=1) > flat.amin(dim=1)) & ~broken

    # uint8(255 C) truncates, as numpy's astype in the reference.
    maps_u8 = (flat * 255.0).to(torch.uint8)
    threshold = otsu_thresholds(maps_u8).clamp(1, 254)
    fg = (maps_u8 > threshold[:, None]).reshape(n_maps, 1, height, width)
    if erosion > 1:
        # Binary erosion = -maxpool(-mask); max-pooling pads with -inf, so the outside of the
        # image never erodes.
        eroded = -F.max_pool2d(-fg.to(torch.float32), erosion, stride=1, padding=erosion // 2) > 0.5
        kept = eroded.flatten(1).any(dim=1)
        fg = torch.where(kept[:, None, None, None], eroded, fg)
    fg = fg.reshape(n_maps, height, width) & usable[:, None, None]

    n_low = int(bg_fraction * height * width)
    if n_low == 0:
        bg = torch.zeros_like(fg)
    else:
        cut = flat.kthvalue(n_low, dim=1).values[:, None]
        bg = flat <= cut
        if bg_ties == "exact":
            # Keep all pixels below the cut and the first (n - #below) tied ones in raster order.
            tied = flat == cut
            room = n_low - (flat < cut).sum(dim=1, keepdim=True)
            bg = (flat < cut) | (tied & (tied.cumsum(dim=1) <= room))
        bg = bg.reshape(n_maps, height, width) & usable[:, None, None]
    return fg, bg


def _draw(region: Tensor, count: int, generator: torch.Generator | None) -> Tensor:
    """``count`` pixels of each image's region, uniformly without replacement (all if fewer)."""
    flat = region.flatten(1)
    picked = torch.zeros_like(flat)
    if count == 0:
        return picked.reshape(region.shape)
    # The top-k of i.i.d. uniform keys is a uniform random subset; pixels outside the region
    # get key -1 and are never kept, so an empty region yields no seed.
    keys = torch.rand(flat.shape, generator=generator, device=flat.device)
    keys = keys.masked_fill(~flat, -1.0)
    top, index = keys.topk(min(count, flat.shape[1]), dim=1)
    picked.scatter_(1, index, top >= 0)
    return picked.reshape(region.shape)


def _dilate(mask: Tensor, size: int) -> Tensor:
    if size == 1:
        return mask
    pooled = F.max_pool2d(mask[:, None].to(torch.float32), size, stride=1, padding=size // 2)
    return pooled[:, 0] > 0.5


def sample_seeds(
    fg_region: Tensor,
    bg_region: Tensor,
    *,
    n_fg: int = 1,
    n_bg: int = 1,
    dilation: int = 3,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw the seed map of one training iteration (F-CAM's pseudo-labels).

    Args:
        fg_region: (B, H, W) bool, ``C+`` from :func:`seed_regions`.
        bg_region: (B, H, W) bool, ``C-``, same device.
        n_fg: foreground pixels drawn per image (fewer if the region is smaller), >= 0.
        n_bg: background pixels drawn per image, >= 0.
        dilation: side of the square patch each drawn pixel grows into, odd >= 1.
        generator: random generator on the regions' device, for reproducible draws
            (foreground keys are drawn first, then background keys).

    Returns:
        (B, H, W) int64: 1 foreground seed, 0 background seed, ``IGNORE`` (-1) elsewhere,
        including pixels claimed by both a foreground and a background patch.

    Raises:
        ValueError: bad shapes, dtypes or counts.
    """
    if fg_region.shape != bg_region.shape or fg_region.ndim != 3:
        raise ValueError(
            f"regions must be two (B, H, W) masks of one shape, got {tuple(fg_region.shape)} and "
            f"{tuple(bg_region.shape)}"
        )
    if fg_region.dtype != torch.bool or bg_region.dtype != torch.bool:
        raise ValueError(f"regions must be bool, got {fg_region.dtype} and {bg_region.dtype}")
    if n_fg < 0 or n_bg < 0:
        raise ValueError(f"n_fg and n_bg must be >= 0, got {n_fg} and {n_bg}")
    if dilation < 1 or dilation % 2 == 0:
        raise ValueError(f"dilation must be an odd size >= 1, got {dilation}")
    fg = _dilate(_draw(fg_region, n_fg, generator), dilation)
    bg = _dilate(_draw(bg_region, n_bg, generator), dilation)
    seeds = torch.full(fg.shape, IGNORE, dtype=torch.int64, device=fg.device)
    seeds = torch.where(fg & ~bg, 1, seeds)
    return torch.where(bg & ~fg, 0, seeds)
