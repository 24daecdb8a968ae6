import gzip

import numpy as np
import pytest
import torch

from mimstudy.data.fashion_mnist import DatasetError, check_available, fashion_mnist, load_split, read_idx, to_tensor

from .conftest import make_fashion_folder, requires_real_data, write_idx


def test_read_idx_roundtrip_gz_and_plain(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for compress in (True, False):
        path = write_idx(tmp_path / f"x{compress}", array, compress)
        np.testing.assert_array_equal(read_idx(path, ndim=3), array)


def test_read_idx_rejects_wrong_magic(tmp_path):
    path = write_idx(tmp_path / "labels", np.zeros(5, np.uint8), compress=False)
    with pytest.raises(DatasetError, match="magic number"):
        read_idx(path, ndim=3)


def test_read_idx_rejects_truncated_payload(tmp_path):
    path = write_idx(tmp_path / "images", np.zeros((4, 28, 28), np.uint8), compress=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        read_idx(path, ndim=3)


def test_read_idx_rejects_truncated_gzip(tmp_path):
    path = write_idx(tmp_path / "images", np.zeros((4, 28, 28), np.uint8), compress=True)
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(DatasetError):
        read_idx(path, ndim=3)


def test_missing_folder_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("MIMSTUDY_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="MIMSTUDY_DATA"):
        check_available()


def test_mismatched_image_and_label_counts(tmp_path):
    folder = make_fashion_folder(tmp_path / "f", n_train=50, n_test=20)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(19, np.uint8))
    with pytest.raises(DatasetError, match="do not match"):
        load_split("test", folder)


def test_to_tensor_pads_to_32_and_standardises():
    x = to_tensor(np.zeros((3, 28, 28), np.uint8))
    assert x.shape == (3, 1, 32, 32)
    # padding and black pixels are the same value: 0 standardised
    assert torch.allclose(x, x[0, 0, 0, 0].expand_as(x))


def test_subsets_are_seeded_disjoint_and_sized(fashion_dir):
    a = fashion_mnist(train_size=100, val_size=50, test_size=30, seed=3)
    b = fashion_mnist(train_size=100, val_size=50, test_size=30, seed=3)
    c = fashion_mnist(train_size=100, val_size=50, test_size=30, seed=4)
    assert (len(a.train), len(a.val), len(a.test)) == (100, 50, 30)
    assert torch.equal(a.train.tensors[0], b.train.tensors[0])
    assert not torch.equal(a.train.tensors[0], c.train.tensors[0])
    # train and val never share an image: compare raw rows
    train_rows = {t.numpy().tobytes() for t in a.train.tensors[0]}
    assert not any(v.numpy().tobytes() in train_rows for v in a.val.tensors[0])


def test_bad_sizes_raise(fashion_dir):
    with pytest.raises(ValueError, match="train_size"):
        fashion_mnist(train_size=10_000)
    with pytest.raises(ValueError, match="test_size"):
        fashion_mnist(train_size=10, test_size=0)


@requires_real_data
def test_real_fashion_mnist_layout():
    images, labels = load_split("test")
    assert images.shape == (10_000, 28, 28) and labels.shape == (10_000,)
    assert set(np.unique(labels)) == set(range(10))
