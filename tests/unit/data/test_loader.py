"""make_loader: the batches do not depend on the number of data-loading worker processes."""

from __future__ import annotations

import torch

from fcam.data.datasets import WSOLDataset, make_loader
from fcam.data.metadata import read_split
from fcam.data.synthetic import make_synthetic


def test_worker_processes_give_the_same_batches(tmp_path):
    make_synthetic(
        tmp_path / "d",
        tmp_path / "m",
        flavour="boxes",
        num_classes=2,
        n_train=10,
        n_val=2,
        n_test=2,
        size=40,
        seed=0,
    )
    meta = read_split(tmp_path / "m" / "train", tmp_path / "d")
    dataset = WSOLDataset(meta, train=True, resize_size=40, crop_size=32, seed=3)
    dataset.set_epoch(2)
    runs = []
    for workers in (0, 2):
        gen = torch.Generator().manual_seed(7)
        loader = make_loader(
            dataset, batch_size=4, workers=workers, shuffle=True, generator=gen, drop_last=True
        )
        runs.append([(b["index"].tolist(), b["image"]) for b in loader])
        runs[-1].append(gen.get_state())
    (*a, state_a), (*b, state_b) = runs
    assert [i for i, _ in a] == [i for i, _ in b]
    assert all(torch.equal(x, y) for (_, x), (_, y) in zip(a, b, strict=True))
    assert torch.equal(state_a, state_b)  # the job's generator advanced the same
