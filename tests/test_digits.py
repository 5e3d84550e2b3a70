"""esb_hw/frontend/digits.py: the bundled digits and their fixed split."""

import numpy as np

from esb_hw.frontend.digits import load_split


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
