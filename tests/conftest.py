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


@pytest.fixture(scope="session", autouse=True)
def backbones_validated_once():
    """Each backbone's arguments validated once per test session. Validation is a pure function of its
    arguments, but a timm Swin without explicit geometry (the paper preset's ``swinv2_base_window12_192``)
    is checked on a copy built on the meta device, ~1-2 s each: ``plan("paper")`` validates it 39 times.
    Rejections are not cached (``lru_cache`` keeps only returns): every bad argument still raises."""
    import functools

    from mimstudy import config

    real = config.validate_backbone

    @functools.lru_cache(maxsize=None)
    def validated(name, img_size, overrides):
        real(name, img_size=img_size, **dict(overrides))

    def validate_backbone(name, img_size=None, **overrides):
        try:
            validated(name, img_size, tuple(sorted(overrides.items())))
        except TypeError:  # an unhashable argument (a list of depths): validated each time
            real(name, img_size=img_size, **overrides)

    config.validate_backbone = validate_backbone
    yield
    config.validate_backbone = real


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


SLOW_FIXTURES = {"ci_results", "committed_book"}  # each runs the ci preset or builds the book
CI_PRESET_MODULE = "test_ci_preset.py"  # the one module whose tests ask for them


def pytest_collection_modifyitems(config, items):
    """Tests that run the ci preset, build the book or open it in a browser are ``slow`` (``make
    test-fast`` leaves them out; ``make test`` and CI run everything). They all live in
    tests/test_ci_preset.py, collected first: ``make test`` runs two pytest-xdist workers with ``--dist
    loadfile --no-loadscope-reorder`` (a module to one worker, modules in collection order), and session
    fixtures are made once per worker, so the ci run and the book build are made once, on the worker that
    starts with them, while the other runs the rest. A test elsewhere that asks for them is refused: it
    would make a second ci run and a second book on the other worker."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
            if item.path.name != CI_PRESET_MODULE:
                raise pytest.UsageError(f"{item.nodeid} asks for {' / '.join(sorted(SLOW_FIXTURES))}: move it to "
                                        f"tests/{CI_PRESET_MODULE}, where every test that reads the ci run lives")
    items.sort(key=lambda item: item.path.name != CI_PRESET_MODULE)  # stable: the ci module first


def nbval_preset(preset: str, root: Path, jobs: int = 2) -> list[subprocess.CompletedProcess]:
    """Every step of ``preset`` executed under nbval (``pytest --nbval-lax``), as CI validates notebooks:
    each notebook prepared by papermill with its step's parameters, the independent groups of runs
    (:func:`~mimstudy.study.runner.independent_groups`) split over ``jobs`` pytest processes of one torch
    thread each, each group in the runner's order, with the runner's pinned numerics. Results go to
    ``root/results`` and ``root/runs`` exactly as ``mimstudy run`` would write them."""
    import papermill

    from mimstudy.numerics import pinned_environment
    from mimstudy.study.runner import NOTEBOOK_DIR, independent_groups, plan

    steps = plan(preset, results_dir=str(root / "results"), runs_dir=str(root / "runs"))
    shares: list[list[str]] = [[] for _ in range(jobs)]
    size = {run: sum(s.config.run_id == run for s in steps) for run in {s.config.run_id for s in steps}}
    for group in sorted(independent_groups(steps), key=lambda g: -sum(size[r] for r in g)):  # the largest first,
        min(shares, key=lambda share: sum(size[r] for r in share)).extend(group)  # each to the lighter process
    prepared = root / "prepared"
    prepared.mkdir()
    commands = []
    for j, share in enumerate(shares):
        paths = []
        for i, step in enumerate(s for s in steps if s.config.run_id in share):
            out = prepared / f"{j}_{i:03d}_{step.notebook}_{step.config.run_id}.ipynb"
            papermill.execute_notebook(str(NOTEBOOK_DIR / f"{step.notebook}.ipynb"), str(out),
                                       parameters=step.config.to_dict(), prepare_only=True)
            paths.append(str(out))
        if paths:
            commands.append([sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
                             "-c", str(prepared / "pytest.ini"), *paths])
    (prepared / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, **pinned_environment(), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    logs = [prepared / f"nbval_{j}.log" for j in range(len(commands))]  # files, not pipes: a full pipe blocks
    processes = []
    for command, log in zip(commands, logs):
        with open(log, "w") as out:  # the child keeps its own copy of the file descriptor
            processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT))
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=1800), log.read_text(), "")
            for p, log in zip(processes, logs)]


@pytest.fixture(scope="session")
def ci_results(tmp_path_factory):
    """The ``ci`` preset executed once, every notebook under nbval (:func:`nbval_preset`), in two
    processes as ``make study`` runs presets: ``(results_dir, runs_dir)``. The runner's own execution
    (papermill) is tested by ``mimstudy verify`` re-making a run (tests/test_verify.py) and its skipping
    of current results by tests/test_runner.py, on these results."""
    if not real_data_available():
        pytest.skip("Fashion-MNIST not installed (make data, or set MIMSTUDY_DATA)")
    root = tmp_path_factory.mktemp("ci-preset")
    for run in nbval_preset("ci", root):
        assert run.returncode == 0, "nbval failed on the ci preset:\n" + run.stdout[-6000:]
    return str(root / "results"), str(root / "runs")


ROOT = Path(__file__).resolve().parents[1]
def build_book(out: Path, **env) -> Path:
    """Build the book warning-free (-W) into ``out``, as ``make book`` does (two pages at a time); its
    ``_build/html`` folder."""
    run = subprocess.run(
        [sys.executable, "-m", "mimstudy.book.build", "--jobs", "2", str(ROOT), "--warningiserror", "--keep-going",
         "--path-output", str(out)],
        capture_output=True, text=True, timeout=900, env={**os.environ, **env},
    )
    logs = "".join(p.read_text() for p in out.glob("_build/html/reports/**/*.log"))
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:] + logs[-4000:]
    return out / "_build" / "html"


BOOK_PRESETS = ("cpu", "quick", "gpu")  # the committed presets the book shows


@pytest.fixture(scope="session")
def committed_book(tmp_path_factory, request) -> Path:
    """The book built once per session: from the committed results (``cpu``, ``quick``, ``gpu``, those
    present) and, where Fashion-MNIST is installed, the fresh ``ci`` run (:func:`ci_results`) beside
    them, so that one build serves the committed-results test, the fresh-run test and the browser
    check: its html folder."""
    if not (ROOT / "results" / "quick" / "probes").is_dir():
        pytest.skip("no committed quick results")
    folder = tmp_path_factory.mktemp("book-results")
    for entry in (ROOT / "results").iterdir():
        (folder / entry.name).symlink_to(entry)
    presets = list(BOOK_PRESETS)
    if real_data_available():
        results, _ = request.getfixturevalue("ci_results")
        (folder / "ci").symlink_to(Path(results) / "ci")
        presets.append("ci")
    return build_book(tmp_path_factory.mktemp("book"), MIMSTUDY_RESULTS_DIR=str(folder),
                      MIMSTUDY_BOOK_PRESET=",".join(presets))
