"""scikit-learn's bundled handwritten digits (8x8 images, 10 classes; no download) with a fixed split.

Images are float ``(N, 1, 8, 8)`` in ``[0, 1]`` (the 0..16 pixel counts divided by 16). The split is a seeded
permutation of the 1,797 images (the last :data:`TEST_FRACTION` held out, stratified by class), computed with
NumPy only, so that it is the same with every scikit-learn version that ships the data.

The data is read from scikit-learn's own file (``sklearn/datasets/data/digits.csv.gz``, what ``load_digits``
returns; ``tests/test_digits.py`` checks that they are equal) without importing scikit-learn, which takes seconds.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["DIGITS_SHAPE", "SEED", "TEST_FRACTION", "DigitsSplit", "load_split"]

DIGITS_SHAPE = (1, 8, 8)
SEED = 2022
TEST_FRACTION = 0.2


@dataclass(frozen=True, eq=False)
class DigitsSplit:
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


@cache
def load_split() -> DigitsSplit:
    """The train/test split (each class split on its own, so both halves keep the class balance)."""
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz" if spec else None
    if path is None or not path.is_file():
        raise InputError("the digits data needs scikit-learn (pip install scikit-learn): "
                         "sklearn/datasets/data/digits.csv.gz not found")
    table = np.loadtxt(path, delimiter=",")
    images = (table[:, :64] / 16.0).reshape(-1, *DIGITS_SHAPE)
    labels = table[:, 64].astype(np.int64)
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
