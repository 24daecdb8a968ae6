"""Fashion-MNIST from IDX files: reading, validation, deterministic subsets and 32x32 tensors.

The study never downloads data. Files are looked up in ``$MIMSTUDY_DATA`` and then in
``/usr/share/datasets/fashion-mnist/`` (Debian's ``dataset-fashion-mnist`` package). Each of the four
files may be gzipped (``*.gz``) or plain.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

DEFAULT_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
IMAGE_SIZE = 32  # 28x28 images padded by 2 pixels on each side
# Mean/std of the padded training images in [0, 1]; used to standardise inputs.
PIXEL_MEAN = 0.2499
PIXEL_STD = 0.3411

_IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}  # unsigned-byte vectors and 3-d arrays


class DatasetError(RuntimeError):
    """The dataset is missing or unreadable; the message says how to fix it."""


def data_dir() -> Path:
    """Folder holding the four Fashion-MNIST IDX files (``$MIMSTUDY_DATA`` wins)."""
    return Path(os.environ.get("MIMSTUDY_DATA", DEFAULT_DATA_DIR))


def _find(folder: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise DatasetError(
        f"Fashion-MNIST file '{stem}[.gz]' not found in {folder}. Install Debian's package "
        "'dataset-fashion-mnist' (make data) or set MIMSTUDY_DATA to a folder holding "
        "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
        "t10k-labels-idx1-ubyte (gzipped or not)."
    )


def check_available(folder: str | Path | None = None) -> Path:
    """The data folder, after checking all four files are there (raises :class:`DatasetError`)."""
    folder = Path(folder) if folder is not None else data_dir()
    for stems in SPLIT_FILES.values():
        for stem in stems:
            _find(folder, stem)
    return folder


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file (gzipped or plain) holding an array of ``ndim`` dimensions.

    Checks the magic number and that the payload size matches the header, so a truncated,
    wrong or corrupt file fails here with a message naming the file.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:  # gzip raises these on truncated streams
        raise DatasetError(f"{path}: cannot read IDX file ({err}); re-install the dataset") from err
    header = 4 + 4 * ndim
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic != _IDX_MAGIC[ndim]:
        raise DatasetError(
            f"{path}: magic number {magic if magic is None else hex(magic)}, expected {_IDX_MAGIC[ndim]:#010x} "
            f"(an unsigned-byte IDX file with {ndim} dimension(s)); wrong or corrupt file"
        )
    if len(raw) < header:
        raise DatasetError(f"{path}: file is {len(raw)} bytes, too short for an IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DatasetError(
            f"{path}: header promises shape {shape} ({expected} bytes) but the file holds "
            f"{len(raw) - header} bytes of data; the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_split(split: str, folder: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 28, 28]`` uint8 and labels ``[N]`` of the ``train`` or ``test`` split."""
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be one of {sorted(SPLIT_FILES)}, got {split!r}")
    folder = Path(folder) if folder is not None else data_dir()
    image_stem, label_stem = SPLIT_FILES[split]
    images = read_idx(_find(folder, image_stem), ndim=3)
    labels = read_idx(_find(folder, label_stem), ndim=1)
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        raise DatasetError(
            f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match "
            "Fashion-MNIST's layout ([N, 28, 28] and [N])"
        )
    return images, labels


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``[N, 28, 28]`` -> standardised float ``[N, 1, 32, 32]`` (zero-padded by 2 pixels)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    x = torch.nn.functional.pad(x, (2, 2, 2, 2))  # [N, 32, 32]
    return ((x - PIXEL_MEAN) / PIXEL_STD).unsqueeze(1)


@dataclass(frozen=True)
class FashionMNISTSplits:
    """Seeded subsets of Fashion-MNIST as tensor datasets of ``(image [1,32,32], label)``."""

    train: TensorDataset
    val: TensorDataset
    test: TensorDataset


def subset_indices(train_size: int | None = None, val_size: int = 0, test_size: int | None = None, seed: int = 0,
                   n_train: int = 60000, n_test: int = 10000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices ``(train, val, test)`` of the seeded subsets :func:`fashion_mnist` takes.

    ``train_size`` and ``val_size`` are drawn without overlap from one seeded permutation of the
    ``n_train`` training images (``None`` takes all that remain); ``test_size`` from a seeded
    permutation of the ``n_test`` test images.
    """
    if val_size < 0 or val_size >= n_train:
        raise ValueError(f"val_size must be in [0, {n_train}), got {val_size}")
    available = n_train - val_size
    train_size = available if train_size is None else train_size
    if not 0 < train_size <= available:
        raise ValueError(f"train_size must be in (0, {available}] with val_size={val_size}, got {train_size}")
    test_size = n_test if test_size is None else test_size
    if not 0 < test_size <= n_test:
        raise ValueError(f"test_size must be in (0, {n_test}], got {test_size}")
    order = np.random.default_rng(seed).permutation(n_train)
    test_idx = np.random.default_rng(seed + 1).permutation(n_test)[:test_size]
    return order[val_size: val_size + train_size], order[:val_size], test_idx


def fashion_mnist(
    train_size: int | None = None,
    val_size: int = 0,
    test_size: int | None = None,
    seed: int = 0,
    folder: str | Path | None = None,
) -> FashionMNISTSplits:
    """Deterministic train/val subsets of the 60k training images and a test subset
    (:func:`subset_indices`). The same arguments always give the same images in the same order.
    """
    train_images, train_labels = load_split("train", folder)
    test_images, test_labels = load_split("test", folder)
    train_idx, val_idx, test_idx = subset_indices(train_size, val_size, test_size, seed,
                                                  n_train=len(train_labels), n_test=len(test_labels))

    def subset(images, labels, idx):
        return TensorDataset(to_tensor(images[idx]), torch.from_numpy(labels[idx].astype(np.int64)))

    return FashionMNISTSplits(
        train=subset(train_images, train_labels, train_idx),
        val=subset(train_images, train_labels, val_idx),
        test=subset(test_images, test_labels, test_idx),
    )
