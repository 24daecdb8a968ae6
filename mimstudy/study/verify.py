"""``mimstudy verify``: re-make stored results in a scratch folder and compare them, value by value.

What a reader runs to check the book on their machine::

    mimstudy verify --preset cpu --runs vit_sup-s0 --jobs 2

The runs (every notebook of each, and the runs they read: a probe re-makes its pre-training) execute
into ``--scratch`` exactly as :func:`mimstudy.study.runner.run_preset` would make them, with the
numerics pinned to the study's baseline (:mod:`mimstudy.numerics`). Then each stored dataset is
compared with its re-made twin, variable by variable and coordinate by coordinate (bitwise equal,
or the largest absolute difference and how many values differ; durations such as ``seconds`` are
left out), and each run's final weights file tensor by tensor. Exit status 0 when everything is bitwise equal, 1 otherwise.

Bitwise equality needs the same numeric code paths (pinned, or the same processor), the same
package versions and the same thread count per process; the stored provenance names all three.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mimstudy.config import PretrainConfig
from mimstudy.models.checkpoints.weights import read_weights
from mimstudy.results import load_dataset, result_path, stored_attrs
from mimstudy.study.runner import Step, plan, run_preset, select_runs
from mimstudy.training.pretrain import weights_path


@dataclass
class Difference:
    """One compared array: where it lives, and how far the re-made one is from the stored one."""

    item: str  # "<result file>: <variable>" or "<weights file>: <tensor>"
    equal: bool  # bitwise (NaN where NaN)
    max_abs: float  # the largest absolute difference (0 when equal; inf when shapes or types differ)
    differing: int  # how many values differ
    size: int

    def line(self) -> str:
        if self.equal:
            return f"  bitwise equal   {self.item}"
        if np.isinf(self.max_abs):
            return f"  DIFFERENT       {self.item}: not comparable (shape, type or presence differ)"
        if np.isnan(self.max_abs):
            return f"  differs         {self.item}: {self.differing} of {self.size} values"
        return f"  differs         {self.item}: max |diff| {self.max_abs:.3g} in {self.differing} of {self.size} values"


def compare_arrays(item: str, stored, remade) -> Difference:
    """Bitwise comparison of two arrays (NaN equal to NaN), with the largest difference where numeric."""
    if stored is None or remade is None:
        return Difference(item, False, float("inf"), -1, -1)
    a, b = np.asarray(stored), np.asarray(remade)
    if a.shape != b.shape or a.dtype != b.dtype:
        return Difference(item, False, float("inf"), -1, int(a.size))
    if a.dtype.kind in "fc":
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        # bitwise: -0.0 and 0.0 compare equal but are other bits
        same &= np.signbit(a) == np.signbit(b) if a.dtype.kind == "f" else True
        differing = int((~same).sum())
        gap = np.abs(a.astype(np.float64) - b.astype(np.float64))
        max_abs = float(np.nanmax(np.where(same, 0.0, gap))) if differing else 0.0
        return Difference(item, differing == 0, max_abs if np.isfinite(max_abs) else float("inf"), differing, int(a.size))
    differing = int((a != b).sum())
    return Difference(item, differing == 0, 0.0 if differing == 0 else float("nan"), differing, int(a.size))


# Measured durations, not computed values: they differ from run to run on any machine.
TIMINGS = frozenset({"seconds", "images_per_s", "data_seconds", "train_seconds"})


def compare_results(stored_path: Path, remade_path: Path) -> list[Difference]:
    """Every data variable and coordinate of two stored datasets but the durations (:data:`TIMINGS`);
    provenance attributes are not compared either (the time and commit of making differ by design)."""
    stored, remade = load_dataset(stored_path), load_dataset(remade_path)
    names = sorted((set(stored.variables) | set(remade.variables)) - TIMINGS)
    return [compare_arrays(f"{stored_path}: {name}", stored[name].values if name in stored.variables else None,
                           remade[name].values if name in remade.variables else None) for name in names]


def compare_weights(stored_path: Path, remade_path: Path) -> list[Difference]:
    stored, _ = read_weights(stored_path)
    remade, _ = read_weights(remade_path)
    return [compare_arrays(f"{stored_path}: {name}", stored[name].numpy() if name in stored else None,
                           remade[name].numpy() if name in remade else None)
            for name in sorted(set(stored) | set(remade))]


def compare_steps(stored: list[Step], remade: list[Step]) -> list[Difference]:
    """Each step's stored result (and a pre-training's weights) against the re-made one."""
    differences = []
    for old, new in zip(stored, remade):
        pairs = [(result_path(old.config), result_path(new.config), compare_results)]
        if isinstance(old.config, PretrainConfig):
            pairs.append((weights_path(old.config), weights_path(new.config), compare_weights))
        for a, b, compare in pairs:
            if not a.is_file() or not b.is_file():
                differences.append(Difference(f"{a}: {'not stored' if not a.is_file() else 'not re-made'}",
                                              False, float("inf"), -1, -1))
            else:
                differences.extend(compare(a, b))
    return differences


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def recorded_threads(steps: list[Step], log=print):
    """Re-make with the torch thread count the stored results record (``torch_threads``): sums split
    over another number of threads round differently. Without one recorded count, as the runner would."""
    counts = {str((stored_attrs(s.result) or {}).get("torch_threads", "")) for s in steps}
    if len(counts) != 1 or not next(iter(counts)).isdigit():
        yield
        return
    threads = next(iter(counts))
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: threads for name in THREAD_VARIABLES})
    log(f"{threads} torch thread(s) per process, as the stored results record")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def verify(preset: str, runs: list[str], results_dir: str = "results", scratch: str | Path | None = None,
           jobs: int = 1, log=print) -> list[Difference]:
    """Re-make ``runs`` of ``preset`` in ``scratch`` (default: a new temporary folder) and compare
    every stored value with the re-made one; returns the comparisons (also logged)."""
    scratch = Path(scratch or tempfile.mkdtemp(prefix="mimstudy-verify-"))
    stored = select_runs(plan(preset, results_dir, str(scratch / "runs")), runs)
    missing = [s.name for s in stored if not s.result.is_file()]
    if missing:
        log(f"not stored under {results_dir}/, so not compared: {', '.join(missing)}")
    log(f"re-making {len(stored)} step(s) in {scratch}")
    with recorded_threads([s for s in stored if s.result.is_file()], log):
        run_preset(preset, results_dir=str(scratch / "results"), runs_dir=str(scratch / "runs"), runs=runs, jobs=jobs,
                   log=log)
    remade = select_runs(plan(preset, str(scratch / "results"), str(scratch / "runs")), runs)
    differences = compare_steps([s for s in stored if s.result.is_file()],
                                [r for s, r in zip(stored, remade) if s.result.is_file()])
    for difference in differences:
        log(difference.line())
    unequal = [d for d in differences if not d.equal]
    log(f"{len(differences) - len(unequal)} of {len(differences)} arrays bitwise equal"
        + ("" if not unequal else f"; {len(unequal)} differ (above)"))
    return differences
