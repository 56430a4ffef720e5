"""Tiny models and tensors for the CAM tests: everything seeded, CPU, float64 where it helps precision."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import Tensor, nn


class SquareHead(nn.Module):
    """``logits = fc(mean_ij A^2)`` with ``A = features(x) = x``, for hand computations.

    The target-layer activation is the input itself and ``dY/dA[c] = 2 w[y, c] A[c] / (h w)``
    varies over space (unlike a GAP + linear head), so every method's formula can be worked
    out by hand on a 2 x 2 map.
    """

    def __init__(self, weight: Tensor):
        super().__init__()
        self.features = nn.Identity()
        self.fc = nn.Linear(weight.shape[1], weight.shape[0], bias=False).to(weight.dtype)
        with torch.no_grad():
            self.fc.weight.copy_(weight)

    @property
    def target_layer(self) -> nn.Module:
        return self.features

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).square().mean(dim=(2, 3)))


class TinyGapNet(nn.Module):
    """conv-BN-ReLU-conv-ReLU (stride 1, so h x w = H x W) + global average pooling + linear."""

    def __init__(self, num_classes: int = 5, channels: int = 8):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
        )
        self.fc = nn.Linear(channels, num_classes)

    @property
    def target_layer(self) -> nn.Module:
        return self.body[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.body(x).mean(dim=(2, 3)))


def _large_head(fc: nn.Linear, low: float, high: float, seed: int) -> None:
    """Re-draw ``fc.weight`` with |w| in [low, high] and random signs (bounded away from zero).

    pytorch-grad-cam adds eps = 1e-6 to Grad-CAM++'s alpha denominator (~ g^2) and torch-cam 1e-8:
    with |dY/dA| >= 1 those eps are below 1e-6 relative, so the parity tests compare formulas.
    """
    gen = torch.Generator().manual_seed(seed)
    magnitude = torch.rand(fc.weight.shape, generator=gen, dtype=torch.float64) * (high - low) + low
    sign = torch.where(torch.rand(fc.weight.shape, generator=gen) < 0.5, -1.0, 1.0).double()
    with torch.no_grad():
        fc.weight.copy_((magnitude * sign).to(fc.weight.dtype))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a shared 2-core machine, 2 spinning OpenMP threads are often 5x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def large_head():
    """The function :func:`_large_head` (fixtures are how test modules here share helpers)."""
    return _large_head


@pytest.fixture
def square_head() -> SquareHead:
    """w = [[1, -1], [1, 0.5]]: class 0 weighs channel 1 negatively, class 1 positively."""
    return SquareHead(torch.tensor([[1.0, -1.0], [1.0, 0.5]], dtype=torch.float64))


@pytest.fixture
def square_images() -> Tensor:
    """Two copies of A = [A0, A1], A0 = [[2, 1], [0, 1]], A1 = [[0, 0], [2, 1]]: (2, 2, 2, 2) float64."""
    a = torch.tensor([[[2.0, 1.0], [0.0, 1.0]], [[0.0, 0.0], [2.0, 1.0]]], dtype=torch.float64)
    return torch.stack([a, a])


@pytest.fixture
def tiny_net() -> TinyGapNet:
    torch.manual_seed(0)
    net = TinyGapNet().double()
    # Non-trivial BN statistics, so that eval vs train mode matters.
    with torch.no_grad():
        net.body[1].running_mean.uniform_(-0.5, 0.5)
        net.body[1].running_var.uniform_(0.5, 2.0)
    return net


@pytest.fixture
def tiny_images() -> Tensor:
    return torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


@pytest.fixture
def resnet18() -> nn.Module:
    """torchvision ResNet18 (weights=None, seeded), float32, eval mode; target layer4 (3 x 3 at 80)."""
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=10).eval()


@pytest.fixture
def resnet_images() -> Tensor:
    return torch.randn(3, 3, 80, 80, generator=torch.Generator().manual_seed(2))


@pytest.fixture
def resnet_labels() -> Tensor:
    return torch.tensor([3, 0, 7])
