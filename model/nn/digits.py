"""The 8x8 handwritten digits (UCI ML hand-written digits, 1797 images, 10 classes) as tensors, a
small MLP classifier and its training and scoring — the validation task of the crossbar layers.

The images come from ``sklearn.datasets.load_digits``, which reads a copy bundled inside the
scikit-learn wheel (no download). scikit-learn is optional: without it :func:`load_digits` raises
:class:`DigitsUnavailable` and the callers skip with that message.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.blocks.config import check_int


class DigitsUnavailable(RuntimeError):
    """scikit-learn (which bundles the digits) is not installed."""


def digits_available() -> bool:
    try:
        import sklearn.datasets  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class Digits:
    """Train / test split; pixels scaled from 0..16 to [0, 1], labels int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits(seed: int = 0, test_fraction: float = 0.25) -> Digits:
    """A seeded, stratification-free random split of the 1797 digits."""
    check_int("load_digits", "seed", seed, 0, 2**32 - 1)
    if not 0.05 <= test_fraction <= 0.95:
        raise ValueError(f"load_digits.test_fraction = {test_fraction}: out of range, "
                         f"allowed [0.05, 0.95]")
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError as e:
        raise DigitsUnavailable("the 8x8 digits need scikit-learn (sklearn.datasets.load_digits, "
                                "bundled in its wheel); it is not installed") from e
    d = _load()
    x = np.asarray(d.data, dtype=np.float32) / 16.0
    y = np.asarray(d.target, dtype=np.int64)
    perm = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    te, tr = perm[:n_test], perm[n_test:]
    t = torch.from_numpy
    return Digits(t(x[tr]), t(y[tr]), t(x[te]), t(y[te]))


def make_mlp(hidden=(32,), act: type[nn.Module] = nn.ReLU, seed: int = 0,
             n_in: int = 64, n_out: int = 10) -> nn.Sequential:
    """Linear → act → ... → Linear, seeded initialisation."""
    torch.manual_seed(seed)
    layers, d = [], n_in
    for h in hidden:
        layers += [nn.Linear(d, h), act()]
        d = h
    layers.append(nn.Linear(d, n_out))
    return nn.Sequential(*layers)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 150,
          lr: float = 1e-2, batch_size: int = 256, seed: int = 0,
          weight_decay: float = 1e-4) -> list[float]:
    """Adam on cross-entropy, seeded mini-batches; returns the mean loss of each epoch."""
    check_int("train", "epochs", epochs, 1, 100_000)
    check_int("train", "batch_size", batch_size, 1, 1 << 20)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    losses = []
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g)
        tot = 0.0
        for i in range(0, len(y), batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            tot += float(loss.detach()) * len(idx)
        losses.append(tot / len(y))
    model.eval()
    return losses


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) in eval mode."""
    was = model.training
    model.eval()
    logits = model(x)
    model.train(was)
    return (float((logits.argmax(-1) == y).float().mean()),
            float(F.cross_entropy(logits.float(), y)))


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return evaluate(model, x, y)[0]


__all__ = ["Digits", "DigitsUnavailable", "accuracy", "digits_available", "evaluate",
           "load_digits", "make_mlp", "train"]
