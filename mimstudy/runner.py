"""Run a preset: execute each notebook run with papermill, in dependency order, skipping done work.

A preset (``presets/<name>.yaml``) maps notebook names to ``defaults`` (parameters shared by its
runs) and ``runs`` (``run_id -> parameters``). Notebooks execute in the order of
:data:`mimstudy.config.CONFIGS` (pre-training before probes). A run is skipped when its dataset
exists and was made with identical parameters; a probe run that must execute re-runs the
pre-training of the same ``run_id`` if that checkpoint is missing (checkpoints are not committed).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from .data import check_available
from .config import CONFIGS, ConfigError, PretrainConfig, RunConfig
from .checkpointing import load_checkpoint
from .pretrain import checkpoint_path, run_dir, stale_checkpoint_fields
from .results import result_path, stored_parameters

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
PRESET_DIR = REPO_ROOT / "presets"


def preset_file(preset: str | Path) -> Path:
    """A preset's YAML file, given its name (``quick``) or a path to a YAML file."""
    path = Path(preset)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"preset file {path} does not exist")
        return path
    path = PRESET_DIR / f"{preset}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown preset {preset!r}; available: {names} (or pass a path to a .yaml file)")
    return path


@dataclass
class Step:
    """One papermill execution: a notebook and the validated config of its parameters."""

    config: RunConfig

    @property
    def notebook(self) -> str:
        return self.config.notebook

    @property
    def name(self) -> str:
        return f"{self.notebook}/{self.config.run_id}"

    @property
    def result(self) -> Path:
        return result_path(self.config)

    @property
    def executed_notebook(self) -> Path:
        return self.result.with_suffix(".ipynb")

    def is_current(self) -> bool:
        """Its dataset exists and was made with exactly these parameters."""
        stored = stored_parameters(self.result)
        return stored is not None and not self.config.differences(stored)


# Parameters whose value names another run of the same preset (and so follows it across seeds).
RUN_REFERENCES = ("init_from",)


def seeded_run_id(run_id: str, seed: int, seeds: list[int]) -> str:
    """Run ids carry their seed only when a preset repeats runs over several seeds."""
    return run_id if len(seeds) == 1 else f"{run_id}-s{seed}"


def plan(preset: str | Path, results_dir: str = "results", runs_dir: str = "runs") -> list[Step]:
    """Expand a preset into validated steps in execution order.

    A top-level ``seeds: [0, 1, 2]`` repeats every run once per seed (run ids get a ``-s<seed>``
    suffix, and references to other runs such as ``init_from`` follow the same seed).
    """
    path = preset_file(preset)
    spec = yaml.safe_load(path.read_text()) or {}
    name = spec.pop("name", path.stem)
    spec.pop("description", None)
    seeds = spec.pop("seeds", None)
    unknown = sorted(set(spec) - set(CONFIGS))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; sections are notebook names and 'seeds'")
    steps = []
    for notebook, config_cls in CONFIGS.items():
        section = spec.get(notebook) or {}
        defaults = section.get("defaults") or {}
        runs = section.get("runs") or {}
        if isinstance(runs, list):
            runs = {run_id: {} for run_id in runs}
        for run_id, params in runs.items():
            merged = {**defaults, **(params or {})}
            run_seeds = [int(s) for s in seeds] if seeds else [int(merged.get("seed", 0))]
            for seed in run_seeds:
                seeded = {**merged, "seed": seed, "preset": name, "run_id": seeded_run_id(run_id, seed, run_seeds),
                          "results_dir": results_dir, "runs_dir": runs_dir}
                for ref in RUN_REFERENCES:
                    if seeded.get(ref):
                        seeded[ref] = seeded_run_id(seeded[ref], seed, run_seeds)
                try:
                    steps.append(Step(config_cls.from_dict(seeded)))
                except (ConfigError, TypeError) as err:
                    raise ConfigError(f"{path}: {notebook} run {run_id!r}: {err}") from err
    return steps


def steps_to_run(steps: list[Step], force: bool = False) -> list[Step]:
    """The steps whose results are missing or stale, plus pre-training whose checkpoint is needed."""
    todo = {step.name for step in steps if force or not step.is_current()}
    pretrain_by_id = {s.config.run_id: s for s in steps if isinstance(s.config, PretrainConfig)}
    for step in reversed(steps):  # consumers come after producers: one backward pass suffices
        if step.name not in todo:
            continue
        for run_id in step.config.required_runs():
            producer = pretrain_by_id.get(run_id)
            if producer is not None and not checkpoint_path(producer.config).exists():
                todo.add(producer.name)
    return [step for step in steps if step.name in todo]


def execute(step: Step, force: bool = False, log=print) -> None:
    """Execute one step's notebook with papermill, writing the executed copy beside its dataset."""
    import papermill

    if isinstance(step.config, PretrainConfig):
        ckpt = checkpoint_path(step.config)
        if ckpt.exists() and (force or stale_checkpoint_fields(step.config, load_checkpoint(ckpt))):
            log(f"    removing {run_dir(step.config)}: " + ("--force" if force else "its parameters changed"))
            shutil.rmtree(run_dir(step.config))  # train from scratch; an unchanged run resumes instead
    step.executed_notebook.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(NOTEBOOK_DIR / f"{step.notebook}.ipynb"),
        str(step.executed_notebook),
        parameters=step.config.to_dict(),
        cwd=str(Path.cwd()),
        progress_bar=False,
        kernel_name="python3",
    )


def run_preset(preset: str | Path, force: bool = False, results_dir: str = "results", runs_dir: str = "runs",
               dry_run: bool = False, log=print) -> list[Step]:
    """Run every step of ``preset`` that is not current; returns the steps that were executed."""
    steps = plan(preset, results_dir, runs_dir)
    todo = steps_to_run(steps, force)
    names = {s.name for s in todo}
    for step in steps:
        if step.name not in names:
            log(f"[skip] {step.name}: {step.result} is current (same parameters); --force re-runs it")
    if todo and not dry_run:
        check_available()  # fail before any notebook starts when the dataset is missing
    for i, step in enumerate(todo, 1):
        log(f"[{i}/{len(todo)}] {step.name} -> {step.result}" + (" (dry run)" if dry_run else ""))
        if dry_run:
            continue
        start = time.perf_counter()
        execute(step, force=force, log=log)
        log(f"[{i}/{len(todo)}] {step.name} done in {time.perf_counter() - start:.0f} s")
    return todo
