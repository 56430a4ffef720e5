"""Seeds from CAMs: Otsu against scikit-image, regions by hand and against scipy, sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fcam.losses import IGNORE, otsu_thresholds, sample_seeds, seed_regions

skimage_filters = pytest.importorskip("skimage.filters")
ndimage = pytest.importorskip("scipy.ndimage")


def _many_maps(n_pixels: int = 400) -> np.ndarray:
    """(M, n_pixels) uint8 maps of many shapes: bimodal, skewed, uniform, narrow, two-valued."""
    rng = np.random.default_rng(0)
    maps = []
    for _ in range(40):
        low, high = sorted(rng.uniform(0, 255, 2))
        share = rng.uniform(0.05, 0.95)
        which = rng.random(n_pixels) < share
        values = np.where(which, rng.normal(low, 12, n_pixels), rng.normal(high, 20, n_pixels))
        maps.append(values)  # bimodal
        maps.append(rng.exponential(rng.uniform(5, 60), n_pixels))  # skewed to 0
        maps.append(255 - rng.exponential(rng.uniform(5, 60), n_pixels))  # skewed to 255
        maps.append(rng.uniform(0, 255, n_pixels))
        maps.append(rng.normal(rng.uniform(20, 230), 1.5, n_pixels))  # few distinct levels
        a, b = rng.choice(256, 2, replace=False)
        maps.append(np.where(rng.random(n_pixels) < share, a, b))  # two-valued
    maps.append(np.zeros(n_pixels))  # constant
    maps.append(np.full(n_pixels, 255.0))
    return np.clip(np.stack(maps), 0, 255).astype(np.uint8)


def test_otsu_equals_scikit_image_on_many_maps():
    maps = _many_maps()
    ours = otsu_thresholds(torch.from_numpy(maps))
    expected = [int(skimage_filters.threshold_otsu(row)) for row in maps]
    assert ours.dtype == torch.int64
    assert ours.tolist() == expected


def test_otsu_hand_computed_values_and_ties():
    maps = torch.tensor(
        [
            [0, 0, 10, 10],  # the only split with both classes non-empty: t in [0, 9] -> 0
            [10, 20, 30, 30],  # see below
            [10, 20, 30, 20],  # t=10 and t=20 tie exactly (1*3*100 vs 3*1*100): first wins -> 10
            [7, 7, 7, 7],  # constant: its value
        ],
        dtype=torch.uint8,
    )
    # Row 1: t=10 -> 1*3*(10 - 80/3)^2 = 833.3; t=20 -> 2*2*(15 - 30)^2 = 900: 20 wins.
    assert otsu_thresholds(maps).tolist() == [0, 20, 10, 7]


def test_otsu_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        otsu_thresholds(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="uint8"):
        otsu_thresholds(torch.zeros(2, 0, dtype=torch.uint8))


def _square_cam(size: int = 24, lo: int = 4, hi: int = 19) -> torch.Tensor:
    """A bright square on a background ramp whose values are all distinct and < 0.2."""
    cam = torch.arange(size * size, dtype=torch.float64).reshape(size, size) / (size * size) * 0.2
    cam[lo:hi, lo:hi] = 1.0
    return cam


def test_regions_by_hand():
    cam = _square_cam()  # 15 x 15 square at [4, 19)
    fg, bg = seed_regions(cam[None], bg_fraction=0.1, erosion=11)
    expected_fg = torch.zeros(24, 24, dtype=torch.bool)
    expected_fg[9:14, 9:14] = True  # the square minus 5 pixels on each side
    assert torch.equal(fg[0], expected_fg)
    # The 57 lowest pixels (floor(0.1 * 576)): the ramp starts at the top-left corner.
    expected_bg = torch.zeros(576, dtype=torch.bool)
    expected_bg[cam.flatten().argsort()[:57]] = True
    assert torch.equal(bg[0].flatten(), expected_bg)


def test_erosion_that_empties_the_region_keeps_it():
    cam = _square_cam(lo=10, hi=13)  # 3 x 3 square: an 11 x 11 erosion removes it
    fg, _ = seed_regions(torch.stack([cam, _square_cam()]), erosion=11)
    assert torch.equal(fg[0], torch.from_numpy(cam.numpy() == 1.0))
    assert fg[1].sum() == 25  # the other image is eroded as usual


def test_erosion_does_not_eat_from_the_image_border():
    cam = torch.full((20, 20), 0.1, dtype=torch.float64)
    cam[:, :8] = 1.0  # a band along the left border
    fg, _ = seed_regions(cam[None], erosion=5)
    expected = torch.zeros(20, 20, dtype=torch.bool)
    expected[:, :6] = True  # only the inner side (2 columns) is eroded
    assert torch.equal(fg[0], expected)


def test_regions_match_skimage_and_scipy_on_random_cams():
    gen = torch.Generator().manual_seed(3)
    coarse = torch.rand(6, 1, 4, 4, generator=gen)
    cams = F.interpolate(coarse, size=(40, 40), mode="bilinear", align_corners=False)[:, 0]
    cams = (cams - cams.amin((1, 2), keepdim=True)) / (
        cams.amax((1, 2), keepdim=True) - cams.amin((1, 2), keepdim=True)
    )
    fg, bg = seed_regions(cams, bg_fraction=0.3, erosion=7)
    for cam, ours_fg, ours_bg in zip(cams.numpy(), fg.numpy(), bg.numpy(), strict=True):
        cam_u8 = (cam * 255).astype(np.uint8)
        threshold = min(max(skimage_filters.threshold_otsu(cam_u8), 1), 254)
        region = cam_u8 > threshold
        eroded = ndimage.binary_erosion(region, np.ones((7, 7)), border_value=1)
        assert np.array_equal(ours_fg, eroded if eroded.any() else region)
        cut = np.sort(cam.ravel())[int(0.3 * cam.size) - 1]
        assert np.array_equal(ours_bg, cam <= cut)


def _tied_cam() -> torch.Tensor:
    """The square CAM with its 168 background pixels of columns 0-11 at exactly 0 (n = 57)."""
    cam = _square_cam()
    cam[:, :12] = torch.where(cam[:, :12] < 1.0, 0.0, cam[:, :12])
    return cam


def _stable_sort_region(cam: torch.Tensor, fraction: float) -> torch.Tensor:
    """The reference's C-: the first int(fraction * h * w) pixels of a stable ascending sort."""
    flat = cam.flatten()
    order = np.argsort(flat.numpy(), kind="stable")[: int(fraction * flat.numel())]
    region = torch.zeros(flat.numel(), dtype=torch.bool)
    region[torch.from_numpy(order)] = True
    return region.reshape(cam.shape)


def test_background_ties_are_all_included():
    cam = _tied_cam()
    _, bg = seed_regions(cam[None], bg_fraction=0.1)  # "include" is the default
    assert torch.equal(bg[0], cam == 0)
    assert bg.sum() == 168  # 24 x 12 minus the square's 15 x 8


def test_background_ties_exact_takes_n_pixels_in_raster_order():
    cam = _tied_cam()
    _, bg = seed_regions(cam[None], bg_fraction=0.1, bg_ties="exact")
    assert bg.sum() == 57
    # Zeros in raster order: rows 0-3 have 12 each (48); from row 4 the square covers cols 4-11,
    # so rows 4 and 5 add cols 0-3 (56) and the 57th zero is row 6, col 0.
    expected = torch.zeros(24, 24, dtype=torch.bool)
    expected[:4, :12] = True
    expected[4:6, :4] = True
    expected[6, 0] = True
    assert torch.equal(bg[0], expected)
    assert torch.equal(bg[0], _stable_sort_region(cam, 0.1))


def test_background_ties_on_a_relu_map_half_zero():
    # A ReLU'd CAM: the left half is exactly 0 (a tie of 50% of the image at the cut).
    cam = torch.zeros(20, 20, dtype=torch.float64)
    cam[:, 10:] = torch.linspace(0.01, 1.0, 200, dtype=torch.float64).reshape(20, 10)
    _, inc = seed_regions(cam[None], bg_fraction=0.1, bg_ties="include")
    _, exact = seed_regions(cam[None], bg_fraction=0.1, bg_ties="exact")
    assert inc.sum() == 200  # half the image instead of 10%
    assert exact.sum() == 40
    assert torch.equal(exact[0], _stable_sort_region(cam, 0.1))
    assert exact[0, :4, :10].all()  # the top 4 rows of the tied half
    assert exact.sum() == exact[0, :4, :10].sum()


def test_background_ties_exact_equals_a_stable_sort_on_many_maps():
    # Quantised maps: ties at every level, below and at the cut; per image in one batch.
    gen = torch.Generator().manual_seed(5)
    coarse = torch.rand(8, 1, 3, 3, generator=gen, dtype=torch.float64)
    cams = F.interpolate(coarse, size=(30, 30), mode="bilinear", align_corners=False)[:, 0]
    cams = (cams - cams.amin((1, 2), keepdim=True)) / (
        cams.amax((1, 2), keepdim=True) - cams.amin((1, 2), keepdim=True)
    )
    cams = torch.floor(cams * torch.tensor([3, 5, 8, 16, 32, 2, 255, 1000.0])[:, None, None]) / 1000
    cams[:, 0, 0] = 1.0  # never constant
    for fraction in (0.05, 0.1, 0.3, 0.7, 1.0):
        _, inc = seed_regions(cams, bg_fraction=fraction, bg_ties="include")
        _, exact = seed_regions(cams, bg_fraction=fraction, bg_ties="exact")
        for cam, ours, wide in zip(cams, exact, inc, strict=True):
            assert ours.sum() == int(fraction * 900)
            assert torch.equal(ours, _stable_sort_region(cam, fraction))
            assert not (ours & ~wide).any()  # exact is a subset of include


def test_background_ties_exact_in_float32_and_without_ties():
    cam = _square_cam().to(torch.float32)  # all background values distinct: both rules agree
    _, inc = seed_regions(cam[None], bg_fraction=0.1, bg_ties="include")
    _, exact = seed_regions(cam[None], bg_fraction=0.1, bg_ties="exact")
    assert torch.equal(inc, exact)
    assert exact.sum() == 57


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_background_ties_exact_on_cuda_matches_cpu_and_torch_sort():
    cam = _tied_cam().to(torch.float32)
    cams = torch.stack([cam, cam.flip(0), cam.T.contiguous()])
    _, cpu = seed_regions(cams, bg_fraction=0.1, bg_ties="exact")
    _, gpu = seed_regions(cams.cuda(), bg_fraction=0.1, bg_ties="exact")
    assert gpu.device.type == "cuda"
    assert torch.equal(gpu.cpu(), cpu)
    # The reference's own call on a 224 x 224 map (a slice > 4096 goes through the stable sort).
    big = F.interpolate(cam[None, None], size=(224, 224), mode="nearest")[0, 0].cuda()
    _, ours = seed_regions(big[None], bg_fraction=0.1, bg_ties="exact")
    _, order = torch.sort(big.view(-1), dim=0, descending=False)
    ref = torch.zeros(224 * 224, dtype=torch.bool, device="cuda")
    ref[order[: int(0.1 * 224 * 224)]] = True
    assert torch.equal(ours[0].flatten(), ref)


def test_clipped_thresholds():
    low = torch.zeros(10, 10, dtype=torch.float64)
    low[:5] = 1.0 / 255  # uint8 {0, 1}: Otsu gives 0, clipped to 1 -> nothing above
    high = torch.full((10, 10), 254.0 / 255, dtype=torch.float64)
    high[:3] = 1.0  # uint8 {254, 255}: Otsu gives 254 -> the 255 pixels
    fg, _ = seed_regions(torch.stack([low, high]), erosion=1)
    assert not fg[0].any()
    assert torch.equal(fg[1], high == 1.0)


def test_constant_and_nan_cams_give_no_seeds():
    constant = torch.full((16, 16), 0.5, dtype=torch.float64)
    broken = _square_cam(16, 4, 12)
    broken[0, 0] = float("nan")
    fg, bg = seed_regions(torch.stack([constant, broken, _square_cam(16, 2, 14)]), erosion=3)
    assert not fg[:2].any()
    assert not bg[:2].any()
    assert fg[2].any()
    assert bg[2].any()
    seeds = sample_seeds(fg, bg, generator=torch.Generator().manual_seed(0))
    assert (seeds[:2] == IGNORE).all()


def test_region_arguments_are_checked():
    with pytest.raises(ValueError, match="bg_fraction"):
        seed_regions(torch.rand(1, 4, 4), bg_fraction=1.5)
    with pytest.raises(ValueError, match="erosion"):
        seed_regions(torch.rand(1, 4, 4), erosion=4)
    with pytest.raises(ValueError, match="cams"):
        seed_regions(torch.rand(4, 4))
    with pytest.raises(ValueError, match="bg_ties must be one of include, exact, got 'raster'"):
        seed_regions(torch.rand(1, 4, 4), bg_ties="raster")


def _regions(n_batch: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    fg = torch.zeros(n_batch, 20, 20, dtype=torch.bool)
    bg = torch.zeros_like(fg)
    fg[:, 8:12, 8:12] = True
    bg[:, :2, :] = True
    return fg, bg


def test_one_seed_each_dilated_to_a_patch():
    fg, bg = _regions()
    seeds = sample_seeds(fg, bg, dilation=1, generator=torch.Generator().manual_seed(0))
    assert seeds.dtype == torch.int64
    assert set(seeds.unique().tolist()) == {IGNORE, 0, 1}
    assert ((seeds == 1).sum((1, 2)) == 1).all()
    assert ((seeds == 0).sum((1, 2)) == 1).all()
    assert fg[seeds == 1].all()
    assert bg[seeds == 0].all()

    seeds = sample_seeds(fg, bg, dilation=3, generator=torch.Generator().manual_seed(0))
    assert ((seeds == 1).sum((1, 2)) == 9).all()  # the fg region is interior: full 3 x 3 patches
    for image in seeds:
        rows, cols = (image == 1).nonzero(as_tuple=True)
        assert rows.max() - rows.min() == 2
        assert cols.max() - cols.min() == 2
        assert fg[0, rows.min() + 1, cols.min() + 1]  # the drawn centre is in the region


def test_counts_larger_than_the_region_take_all_of_it():
    fg, bg = _regions(1)
    seeds = sample_seeds(fg, bg, n_fg=100, n_bg=0, dilation=1)
    assert torch.equal(seeds == 1, fg)
    assert not (seeds == 0).any()


def test_pixels_claimed_by_both_are_dropped():
    fg = torch.zeros(1, 5, 5, dtype=torch.bool)
    bg = torch.zeros_like(fg)
    fg[0, 2, 1] = True
    bg[0, 2, 3] = True
    seeds = sample_seeds(fg, bg, dilation=3)
    # Patches: columns 0-2 (fg) and 2-4 (bg), rows 1-3; column 2 is claimed by both.
    assert (seeds[0, 1:4, 2] == IGNORE).all()
    assert (seeds[0, 1:4, :2] == 1).all()
    assert (seeds[0, 1:4, 3:] == 0).all()
    assert (seeds[0, [0, 4]] == IGNORE).all()


def test_empty_regions_give_no_seeds():
    empty = torch.zeros(2, 6, 6, dtype=torch.bool)
    assert (sample_seeds(empty, empty, n_fg=3, n_bg=3) == IGNORE).all()


def test_sampling_is_reproducible_and_uniform():
    fg, bg = _regions(2)
    first = sample_seeds(fg, bg, generator=torch.Generator().manual_seed(5))
    again = sample_seeds(fg, bg, generator=torch.Generator().manual_seed(5))
    other = sample_seeds(fg, bg, generator=torch.Generator().manual_seed(6))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    # 4000 images whose fg region has 4 pixels: each is drawn about 1000 times (sd 27).
    region = torch.zeros(4000, 3, 3, dtype=torch.bool)
    region[:, 0, 0] = region[:, 0, 2] = region[:, 2, 0] = region[:, 2, 2] = True
    seeds = sample_seeds(
        region, torch.zeros_like(region), dilation=1, generator=torch.Generator().manual_seed(0)
    )
    counts = (seeds == 1).sum(0)[[0, 0, 2, 2], [0, 2, 0, 2]]
    assert counts.sum() == 4000
    assert ((counts - 1000).abs() < 5 * 27.4).all()


def test_sampling_arguments_are_checked():
    fg, bg = _regions(1)
    with pytest.raises(ValueError, match="one shape"):
        sample_seeds(fg, bg[:, :5])
    with pytest.raises(ValueError, match="bool"):
        sample_seeds(fg.long(), bg)
    with pytest.raises(ValueError, match="n_fg"):
        sample_seeds(fg, bg, n_fg=-1)
    with pytest.raises(ValueError, match="dilation"):
        sample_seeds(fg, bg, dilation=2)
