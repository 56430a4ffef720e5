"""Partial cross-entropy: hand values, equivalence with full cross-entropy, no-seed batches."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fcam.losses import IGNORE, partial_cross_entropy


def test_hand_computed_value():
    logits = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    logits[0, 1, 0, 0] = math.log(3.0)  # softmax (1/4, 3/4) at pixel (0, 0)
    seeds = torch.full((1, 2, 2), IGNORE)
    seeds[0, 0, 0] = 1  # -log(3/4)
    seeds[0, 1, 1] = 0  # uniform logits there: -log(1/2)
    expected = (-math.log(0.75) - math.log(0.5)) / 2
    assert partial_cross_entropy(logits, seeds).item() == pytest.approx(expected)


def test_equals_cross_entropy_over_the_labelled_pixels():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 2, 8, 8, generator=gen, dtype=torch.float64)
    seeds = torch.randint(-1, 2, (3, 8, 8), generator=gen)
    labelled = seeds != IGNORE
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[labelled], seeds[labelled])
    torch.testing.assert_close(partial_cross_entropy(logits, seeds), expected)


def test_batch_without_seeds_gives_zero_and_a_zero_gradient():
    logits = torch.randn(2, 2, 4, 4, requires_grad=True)
    loss = partial_cross_entropy(logits, torch.full((2, 4, 4), IGNORE))
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    assert logits.grad is not None
    assert (logits.grad == 0).all()


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="seeds"):
        partial_cross_entropy(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match="int64"):
        partial_cross_entropy(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int32))
