"""One training step of each phase: what it updates and that it learns."""

from __future__ import annotations

import torch

from fcam.losses import FCAMLoss, LossTerm
from fcam.models import FCAM, build_classifier, build_decoder
from fcam.pipeline.sections import SeedParams
from fcam.train.classifier import classifier_step
from fcam.train.decoder import decoder_step


def _batch(size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    raw = torch.rand(4, 3, size, size, generator=gen) * 255
    labels = torch.tensor([0, 1, 0, 1])
    raw[labels == 1, 0] = 255.0  # class 1 is red: learnable in a few steps
    return raw, (raw / 255 - 0.5) / 0.25, labels


def test_classifier_step_learns_a_fixed_batch():
    torch.manual_seed(0)
    model = build_classifier("resnet50", 2).train()
    optimizer = torch.optim.SGD(model.param_groups(1e-4), lr=1e-4, momentum=0.9)
    _, images, labels = _batch()
    losses = [classifier_step(model, optimizer, images, labels)[0] for _ in range(8)]
    assert max(losses[-2:]) < losses[0]
    _, logits = classifier_step(model, optimizer, images, labels)
    assert logits.shape == (4, 2)
    assert not logits.requires_grad


def test_decoder_step_trains_the_decoder_only():
    torch.manual_seed(0)
    classifier = build_classifier("resnet50", 2)
    model = FCAM(classifier, build_decoder("resnet50", classifier.encoder.out_channels)).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    raw, images, _ = _batch()
    cams = torch.zeros(4, 32, 32)
    cams[:, 8:24, 8:24] = 1.0
    seeds = SeedParams(n_fg=1, n_bg=1, bg_ties="include", erosion=3, dilation=3)
    criterion = FCAMLoss(
        (LossTerm("pce", 1.0), LossTerm("crf", 1e-6), LossTerm("size", 0.1)), crf_sigma_xy=10.0
    )
    frozen = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    decoder = [p.detach().clone() for p in model.decoder.parameters()]
    loss, terms = decoder_step(
        model,
        optimizer,
        criterion,
        images,
        raw,
        cams,
        seeds,
        bg_fraction=0.1,
        epoch=0,
        t=1.0,
        generator=torch.Generator().manual_seed(1),
    )
    assert set(terms) == {"pce", "crf", "size"}
    assert loss > 0
    assert all(torch.equal(v, model.classifier.state_dict()[k]) for k, v in frozen.items())
    assert any(not torch.equal(a, b) for a, b in zip(decoder, model.decoder.parameters(), strict=True))
