"""FCAMLoss: term schedule, weighting, logging values, unknown names."""

from __future__ import annotations

import pytest
import torch

from fcam.errors import ConfigError
from fcam.losses import (
    IGNORE,
    REFERENCE_TERMS,
    FCAMLoss,
    LossTerm,
    absolute_size_loss,
    dense_crf_loss,
    partial_cross_entropy,
)


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 2, 12, 12, generator=gen, dtype=torch.float64, requires_grad=True)
    seeds = torch.full((2, 12, 12), IGNORE)
    seeds[:, 2:5, 2:5] = 0
    seeds[:, 7:10, 7:10] = 1
    images = torch.rand(2, 3, 12, 12, generator=gen, dtype=torch.float64) * 255
    return logits, seeds, images


def test_term_activity():
    term = LossTerm("crf", 1.0, start_epoch=2, end_epoch=5)
    assert [term.active(e) for e in range(7)] == [False, False, True, True, True, False, False]
    assert LossTerm("pce", 1.0).active(10_000)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weight": -1.0}, "weight"),
        ({"weight": float("nan")}, "weight"),
        ({"weight": 1.0, "start_epoch": -1}, "start_epoch"),
        ({"weight": 1.0, "start_epoch": 3, "end_epoch": 3}, "end_epoch"),
    ],
)
def test_bad_terms_are_rejected(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        LossTerm("pce", **kwargs)


def test_reference_weighted_sum():
    logits, seeds, images = _inputs()
    loss_fn = FCAMLoss(REFERENCE_TERMS, crf_sigma_xy=5.0)
    total, values = loss_fn(logits, seeds, images, epoch=0, t=1.5)
    probs = torch.softmax(logits, dim=1)
    expected = {
        "pce": partial_cross_entropy(logits, seeds),
        "crf": dense_crf_loss(images, probs, sigma_xy=5.0),
        "size": absolute_size_loss(probs, 1.5),
    }
    assert values == pytest.approx({name: value.item() for name, value in expected.items()})
    assert all(isinstance(v, float) for v in values.values())
    weighted = expected["pce"] + 2e-9 * expected["crf"] + 0.1 * expected["size"]
    torch.testing.assert_close(total, weighted)
    total.backward()
    assert logits.grad is not None
    assert torch.isfinite(logits.grad).all()


def test_inactive_terms_are_not_computed():
    logits, seeds, _ = _inputs()
    loss_fn = FCAMLoss([LossTerm("pce", 1.0), LossTerm("crf", 1.0, start_epoch=3)])
    # The CRF would fail on these images; before epoch 3 it is never evaluated.
    total, values = loss_fn(logits, seeds, torch.zeros(1), epoch=2, t=1.0)
    assert set(values) == {"pce"}
    torch.testing.assert_close(total, partial_cross_entropy(logits, seeds))
    with pytest.raises(ValueError, match="images"):
        loss_fn(logits, seeds, torch.zeros(1), epoch=3, t=1.0)


def test_no_active_term_gives_an_attached_zero():
    logits, seeds, images = _inputs()
    total, values = FCAMLoss([LossTerm("size", 1.0, end_epoch=1)])(logits, seeds, images, epoch=4, t=1.0)
    assert values == {}
    assert total.item() == 0.0
    total.backward()
    assert logits.grad is not None
    assert (logits.grad == 0).all()


def test_unknown_and_repeated_terms_are_config_errors():
    with pytest.raises(ConfigError, match="'entropy'"):
        FCAMLoss([LossTerm("pce", 1.0), LossTerm("entropy", 1.0)])
    with pytest.raises(ConfigError, match="more than once"):
        FCAMLoss([LossTerm("pce", 1.0), LossTerm("pce", 2.0)])
    with pytest.raises(ConfigError, match="crf settings"):
        FCAMLoss(REFERENCE_TERMS, crf_scale=2.0)


def test_logits_must_have_two_channels():
    _, seeds, images = _inputs()
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        FCAMLoss(REFERENCE_TERMS)(torch.zeros(2, 3, 12, 12), seeds, images, epoch=0, t=1.0)
