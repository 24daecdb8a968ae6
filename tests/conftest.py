"""Shared fixtures: a small synthetic Fashion-MNIST in IDX format, so unit tests need no real data."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    """Write a uint8 array as an IDX file (magic 0x0000080N, big-endian dims, payload)."""
    header = (0x0800 + array.ndim).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path


def make_fashion_folder(folder: Path, n_train: int = 600, n_test: int = 200, seed: int = 0, compress: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        # class-dependent brightness so a classifier can learn something
        images = (rng.random((n, 28, 28)) * 80 + labels[:, None, None] * 17).astype(np.uint8)
        write_idx(folder / f"{stem}-images-idx3-ubyte", images, compress)
        write_idx(folder / f"{stem}-labels-idx1-ubyte", labels, compress)
    return folder


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one torch thread avoids oversubscribing a shared machine (restored afterwards)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fashion_dir(tmp_path, monkeypatch):
    """A synthetic Fashion-MNIST folder, set as ``$MIMSTUDY_DATA``."""
    folder = make_fashion_folder(tmp_path / "fashion")
    monkeypatch.setenv("MIMSTUDY_DATA", str(folder))
    return folder


def real_data_available() -> bool:
    from mimstudy.data.fashion_mnist import DatasetError, check_available

    try:
        check_available()
        return True
    except DatasetError:
        return False


requires_real_data = pytest.mark.skipif(
    not real_data_available(), reason="Fashion-MNIST not installed (make data, or set MIMSTUDY_DATA)"
)


@pytest.fixture(scope="session")
def ci_results(tmp_path_factory):
    """The ``ci`` preset executed once through the runner (papermill), in two parallel ``mimstudy run``
    processes as ``make study`` runs presets: ``(results_dir, runs_dir)``."""
    from mimstudy.study.runner import run_preset

    if not real_data_available():
        pytest.skip("Fashion-MNIST not installed (make data, or set MIMSTUDY_DATA)")
    root = tmp_path_factory.mktemp("ci-preset")
    results, runs = str(root / "results"), str(root / "runs")
    executed = run_preset("ci", results_dir=results, runs_dir=runs, log=lambda *_: None, jobs=2)
    assert executed, "a fresh results folder must execute every step"
    return results, runs


ROOT = Path(__file__).resolve().parents[1]
JUPYTER_BOOK = Path(sys.executable).with_name("jupyter-book")


def build_book(out: Path, **env) -> Path:
    """Build the book warning-free (-W) into ``out``; its ``_build/html`` folder."""
    run = subprocess.run(
        [str(JUPYTER_BOOK), "build", str(ROOT), "--warningiserror", "--keep-going", "--path-output", str(out)],
        capture_output=True, text=True, timeout=900, env={**os.environ, **env},
    )
    logs = "".join(p.read_text() for p in out.glob("_build/html/reports/**/*.log"))
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:] + logs[-4000:]
    return out / "_build" / "html"


@pytest.fixture(scope="session")
def committed_book(tmp_path_factory) -> Path:
    """The book built once per session from the committed results (``cpu``, ``quick``, ``gpu``, those present): its html folder."""
    if not (ROOT / "results" / "quick" / "probes").is_dir():
        pytest.skip("no committed quick results")
    return build_book(tmp_path_factory.mktemp("book"), MIMSTUDY_RESULTS_DIR=str(ROOT / "results"),
                      MIMSTUDY_BOOK_PRESET="cpu,quick,gpu")
