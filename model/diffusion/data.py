"""Data sets of the diffusion models (``docs/diffusion.md``), nothing downloaded at run time.

``digits``
    scikit-learn's bundled 8×8 digits (1797 images, a copy inside the scikit-learn wheel), pixel
    ``v ∈ 0…16`` → ``v/8 − 1`` ∈ [−1, 1] (exact in float32). The train / test split is the seeded
    one of :func:`model.nn.digits.load_digits` (a quarter held out), so the diffusion model and the
    crossbar classifier of the same seed see the same images; ``split="all"`` is all 1797.
``fashion-mnist``
    Debian's ``dataset-fashion-mnist`` package (Zalando's 60 000 + 10 000 28×28 images, as the
    upstream idx files, gzip-compressed, under ``/usr/share/datasets/fashion-mnist/``), pixel
    ``v ∈ 0…255`` → ``v/127.5 − 1``. The split is the data set's own (``seed`` does not change
    it). Not installed → :class:`DatasetUnavailable` saying ``make fashion-mnist``.
``ring``, ``latent-digits``
    Two-dimensional point sets: :func:`model.diffusion.data2d.load_2d`.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DATASETS = ("digits", "fashion-mnist", "ring", "latent-digits")
SPLITS = ("train", "test", "all")

#: Where Debian's dataset-fashion-mnist puts the idx files (``dpkg -c`` of
#: dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb, bookworm). Overridable for tests and
#: other installs with the environment variable SPINDIFF_FASHION_MNIST_DIR.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                       "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FASHION_MNIST_HINT = ("install it with `make fashion-mnist` (as root: "
                      "apt-get install dataset-fashion-mnist)")


class DatasetUnavailable(RuntimeError):
    """A data set's files (or the package that bundles them) are not installed; the message
    says how to install them."""


@dataclass
class Dataset:
    """One split of a data set.

    Attributes
    ----------
    name, kind:
        Data set name (:data:`DATASETS`) and ``"image"`` or ``"points"``.
    x:
        float32; images (N, 1, H, W) in [−1, 1], points (N, 2).
    y:
        int64 labels (N,), or ``None``.
    classes:
        Number of classes, or ``None``.
    shape:
        One sample's shape, e.g. ``(1, 8, 8)`` or ``(2,)``.
    """

    name: str
    kind: str
    x: torch.Tensor
    y: torch.Tensor | None
    classes: int | None
    shape: tuple

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def dim(self) -> int:
        """Flattened sample size."""
        return int(np.prod(self.shape))

    def flat(self) -> torch.Tensor:
        """``x`` as (N, dim)."""
        return self.x.reshape(len(self), -1)


def _check_common(name, split, seed):
    if name not in DATASETS:
        raise ValueError(f"load_dataset.name = {name!r}: unknown, allowed {DATASETS}")
    if split not in SPLITS:
        raise ValueError(f"load_dataset.split = {split!r}: unknown, allowed {SPLITS}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"load_dataset.seed = {seed!r}: out of range, allowed integer "
                         f"[0, {2**32 - 1}]")


def _digits(split: str, seed: int) -> Dataset:
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError as e:
        raise DatasetUnavailable("digits: needs scikit-learn (its wheel bundles the 8x8 digits); "
                                 "install the project's pinned environment with `make venv`"
                                 ) from e
    if split == "all":
        d = _load()
        v = np.asarray(d.data, dtype=np.float32).reshape(-1, 1, 8, 8) / 16.0
        y = torch.from_numpy(np.asarray(d.target, dtype=np.int64))
        x = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
    else:
        # The split of model.nn.digits.load_digits(seed): same permutation, a quarter held out.
        from model.nn.digits import load_digits
        dd = load_digits(seed)
        x, y = (dd.x_train, dd.y_train) if split == "train" else (dd.x_test, dd.y_test)
        x = x.reshape(-1, 1, 8, 8)
    # v/16 and 2·(v/16) − 1 = v/8 − 1 are exact in float32.
    x = (2.0 * x - 1.0).contiguous()
    return Dataset("digits", "image", x, y.clone(), 10, (1, 8, 8))


def fashion_mnist_dir() -> Path:
    return Path(os.environ.get("SPINDIFF_FASHION_MNIST_DIR", FASHION_MNIST_DIR))


def _idx_path(base: Path, stem: str) -> Path | None:
    for p in (base / (stem + ".gz"), base / stem):
        if p.is_file():
            return p
    return None


def read_idx(path) -> np.ndarray:
    """An idx file (LeCun's MNIST format; gzip if the name ends in .gz) as a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DatasetUnavailable(f"{path}: unreadable ({e}); reinstall it with "
                                 f"`apt-get install --reinstall dataset-fashion-mnist`") from e
    types = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in types:
        raise DatasetUnavailable(f"{path}: not an idx file (bad magic); reinstall it with "
                                 f"`apt-get install --reinstall dataset-fashion-mnist`")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    dt = np.dtype(types[raw[2]])
    n = int(np.prod(dims))
    off = 4 + 4 * ndim
    if len(raw) != off + n * dt.itemsize:
        raise DatasetUnavailable(f"{path}: truncated or corrupt ({len(raw)} bytes, expected "
                                 f"{off + n * dt.itemsize}); reinstall it with "
                                 f"`apt-get install --reinstall dataset-fashion-mnist`")
    return np.frombuffer(raw, dtype=dt, count=n, offset=off).reshape(dims)


def fashion_mnist_available() -> bool:
    base = fashion_mnist_dir()
    return all(_idx_path(base, s) is not None for f in FASHION_MNIST_FILES.values() for s in f)


def _fashion(split: str) -> Dataset:
    base = fashion_mnist_dir()
    parts = ("train", "test") if split == "all" else (split,)
    xs, ys = [], []
    for part in parts:
        img_stem, lab_stem = FASHION_MNIST_FILES[part]
        img, lab = _idx_path(base, img_stem), _idx_path(base, lab_stem)
        if img is None or lab is None:
            missing = img_stem if img is None else lab_stem
            raise DatasetUnavailable(f"fashion-mnist: {base / missing}(.gz) not found; "
                                     f"{FASHION_MNIST_HINT}")
        xi, yi = read_idx(img), read_idx(lab)
        if xi.ndim != 3 or xi.shape[1:] != (28, 28) or yi.shape != (xi.shape[0],):
            raise DatasetUnavailable(f"fashion-mnist: {img} / {lab}: shapes {xi.shape} / "
                                     f"{yi.shape}, expected (N, 28, 28) / (N,); reinstall with "
                                     f"`apt-get install --reinstall dataset-fashion-mnist`")
        xs.append(xi)
        ys.append(yi)
    v = np.concatenate(xs).astype(np.float32)
    x = torch.from_numpy(np.ascontiguousarray((v / 127.5 - 1.0).reshape(-1, 1, 28, 28),
                                              dtype=np.float32))
    y = torch.from_numpy(np.concatenate(ys).astype(np.int64))
    return Dataset("fashion-mnist", "image", x, y, 10, (1, 28, 28))


def load_dataset(name: str, split: str = "train", seed: int = 0) -> Dataset:
    """One split (``"train"``, ``"test"`` or ``"all"``) of a data set of :data:`DATASETS`
    (module docstring); the same (name, split, seed) gives the same tensors."""
    _check_common(name, split, seed)
    if name == "digits":
        return _digits(split, seed)
    if name == "fashion-mnist":
        return _fashion(split)
    from model.diffusion.data2d import load_2d      # written alongside; imported on demand
    return load_2d(name, split, seed)


__all__ = ["DATASETS", "SPLITS", "Dataset", "DatasetUnavailable", "FASHION_MNIST_DIR",
           "fashion_mnist_available", "load_dataset", "read_idx"]
