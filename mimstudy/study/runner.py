"""Run a preset: execute each notebook run with papermill, in dependency order, skipping done work.

A preset (``presets/<name>.yaml``) maps notebook names to ``defaults`` (parameters shared by its
runs) and ``runs`` (``run_id -> parameters``). Notebooks execute in the order of
:data:`mimstudy.config.CONFIGS` (pre-training before probes). A run is skipped when its dataset
exists and was made with identical parameters and unchanged code (:mod:`mimstudy.study.staleness`);
a probe run that must execute re-runs the pre-training of the same ``run_id`` if that checkpoint is
missing (checkpoints are not committed).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from mimstudy import numerics
from mimstudy.atomic import atomic_path
from mimstudy.data.fashion_mnist import check_available
from mimstudy.config import CONFIGS, RANDOM_WEIGHTS, ConfigError, DownstreamConfig, PretrainConfig, RunConfig, TrajectoryConfig
from mimstudy.downstream.transfer import run_folder
from mimstudy.models.checkpoints.state import load_checkpoint
from mimstudy.training.pretrain import checkpoint_path, run_dir, stale_checkpoint_fields
from mimstudy.results import result_path, stored_attrs
from mimstudy.study.staleness import CodeVersions, result_change

REPO_ROOT = Path(__file__).resolve().parents[2]
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

    def stale_reason(self, attrs: dict | None, code: CodeVersions) -> str | None:
        """Why its dataset is not current (missing, other parameters, changed code), or ``None``.

        ``attrs``: the attributes stored with its dataset (:func:`~mimstudy.results.stored_attrs`).
        """
        return result_change(self.config, attrs, code)


# Parameters whose value names another run of the same preset (and so follows it across seeds).
RUN_REFERENCES = ("init_from", "lr_from")


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
    spec.pop("executor", None)  # job resources for --executor slurm (mimstudy.study.executor)
    spec.pop("pieces", None)  # the campaign's ledger (mimstudy.study.ledger)
    seeds = spec.pop("seeds", None)
    unknown = sorted(set(spec) - set(CONFIGS))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; sections are notebook names, 'seeds', 'executor' "
                          "and 'pieces'")
    steps = []
    for notebook, config_cls in CONFIGS.items():
        section = spec.get(notebook) or {}
        defaults = section.get("defaults") or {}
        runs = section.get("runs") or {}
        if isinstance(runs, list):  # names, or one-entry mappings {run_id: {parameters}}
            runs = {run_id: params for item in runs
                    for run_id, params in (item.items() if isinstance(item, dict) else [(item, {})])}
        for run_id, params in runs.items():
            merged = {**defaults, **(params or {})}
            run_seeds = [int(s) for s in seeds] if seeds else [int(merged.get("seed", 0))]
            for seed in run_seeds:
                seeded = {**merged, "seed": seed, "preset": name, "run_id": seeded_run_id(run_id, seed, run_seeds),
                          "results_dir": results_dir, "runs_dir": runs_dir}
                for ref in RUN_REFERENCES:
                    if seeded.get(ref) and seeded[ref] != RANDOM_WEIGHTS:  # 'random' names no run
                        seeded[ref] = seeded_run_id(seeded[ref], seed, run_seeds)
                try:
                    steps.append(Step(config_cls.from_dict(seeded)))
                except (ConfigError, TypeError) as err:
                    raise ConfigError(f"{path}: {notebook} run {run_id!r}: {err}") from err
    check_run_references(path, steps)
    return steps


def check_run_references(path: Path, steps: list[Step]) -> None:
    """Run references resolve to one step each (:func:`readable_by_run_id`): no downstream run takes a
    pre-training run's id, and each ``lr_from`` names a downstream run listed before it (it runs first)
    from the same ``init_from``."""
    pretraining = {s.config.run_id for s in steps if isinstance(s.config, PretrainConfig)}
    earlier: dict[str, DownstreamConfig] = {}
    for step in steps:
        config = step.config
        if not isinstance(config, DownstreamConfig):
            continue
        if config.run_id in pretraining:
            raise ConfigError(f"{path}: downstream run {config.run_id!r} has the id of a pre-training run; "
                              "rename it (references such as init_from name runs by id)")
        source = earlier.get(config.lr_from)
        if config.lr_from and source is None:
            raise ConfigError(f"{path}: downstream run {config.run_id!r}: lr_from {config.lr_from!r} is not a "
                              f"downstream run listed before it; list the run that chooses the rate first")
        if source is not None and source.init_from != config.init_from:
            raise ConfigError(f"{path}: downstream run {config.run_id!r} reuses the rate of {config.lr_from!r}, "
                              f"fine-tuned from {source.init_from!r}, not {config.init_from!r}: a rate is "
                              "chosen per pre-training")
        earlier[config.run_id] = config


def readable_by_run_id(steps: list[Step]) -> dict[str, Step]:
    """The steps other steps may read, by run id: pre-training (checkpoints) and downstream runs
    (a chosen learning rate, ``lr_from``); :func:`check_run_references` keeps their ids apart."""
    return {s.config.run_id: s for s in steps if isinstance(s.config, (PretrainConfig, DownstreamConfig))}


def producers(step: Step, readable: dict[str, Step]) -> list[Step]:
    """The steps (of ``readable``, by run id) whose checkpoints or results ``step`` reads."""
    return [readable[r] for r in step.config.required_runs() if r in readable]


def select_runs(steps: list[Step], run_ids: list[str] | None) -> list[Step]:
    """The steps of ``run_ids`` (every notebook of each) plus the runs they read (pre-training; the
    downstream run whose learning rate an ``lr_from`` reuses).

    ``None`` keeps every step. A run id may be a shell-style pattern: ``*-s0`` picks every run of seed
    0 (one piece of a long preset), ``vit_*`` every ViT run. Dependencies are followed transitively (a
    fine-tune's probe needs the fine-tune, which needs its SimMIM run), but only the producing step
    of each (pre-training or downstream) is added.
    """
    if run_ids is None:
        return steps
    known = list(dict.fromkeys(s.config.run_id for s in steps))
    unknown = [r for r in run_ids if not fnmatch.filter(known, r)]
    if unknown:
        raise ConfigError(f"unknown run id(s) {unknown}; this preset's runs are {known}")
    run_ids = [k for k in known if any(fnmatch.fnmatchcase(k, r) for r in run_ids)]
    readable = readable_by_run_id(steps)
    chosen = {s.name for s in steps if s.config.run_id in run_ids}
    pending = [s for s in steps if s.name in chosen]
    while pending:
        for producer in producers(pending.pop(), readable):
            if producer.name not in chosen:
                chosen.add(producer.name)
                pending.append(producer)
    return [s for s in steps if s.name in chosen]


def independent_groups(steps: list[Step]) -> list[list[str]]:
    """Run ids grouped so that no group reads another's checkpoints, in the preset's order.

    Steps of one run id and runs joined by ``required_runs`` (a fine-tune and its SimMIM run) share a
    group; different groups can execute at the same time.
    """
    parent: dict[str, str] = {}

    def root(run_id: str) -> str:
        parent.setdefault(run_id, run_id)
        while parent[run_id] != run_id:
            run_id = parent[run_id]
        return run_id

    for step in steps:
        for run_id in step.config.required_runs():
            parent[root(run_id)] = root(step.config.run_id)
    groups: dict[str, list[str]] = {}
    for step in steps:
        members = groups.setdefault(root(step.config.run_id), [])
        if step.config.run_id not in members:
            members.append(step.config.run_id)
    return list(groups.values())


CHECKPOINT_NEEDED = "its checkpoint is needed by "


def rerun_reasons(steps: list[Step], force: bool = False, checkpoints: bool = True,
                  code: CodeVersions | None = None) -> dict[str, str]:
    """``{step name: why it would run}`` for the steps that would, in execution order.

    A result is stale when it is missing, its parameters changed or the code it depends on changed
    (:func:`mimstudy.study.staleness.result_change`), and also when a pre-training run it reads is
    re-run now or was re-made after it (its stored ``created`` time is later): probes of a model
    that was trained again describe the old model. A pre-training result is current only with its
    final weights, as recorded, beside it (:func:`mimstudy.study.staleness.weights_change`). With
    ``checkpoints``, a pre-training whose checkpoint is missing runs too when a trajectory that reads
    its epoch snapshots runs (they stay in ``runs/``, not committed).
    """
    code = code or CodeVersions()
    stored: dict[str, dict | None] = {}

    def attrs(step: Step) -> dict | None:  # each result's attributes, read once
        if step.name not in stored:
            stored[step.name] = stored_attrs(step.result)
        return stored[step.name]

    def made_at(step: Step) -> str:
        return str((attrs(step) or {}).get("created", ""))

    todo = {}
    for step in steps:
        reason = "--force" if force else step.stale_reason(attrs(step), code)
        if reason:
            todo[step.name] = reason
    readable = readable_by_run_id(steps)
    changed = True
    while changed:  # until no consumer of a re-run or newer producer is left out (chains: SimMIM -> FT -> probes)
        changed = False
        for step in steps:
            if step.name in todo:
                continue
            for p in producers(step, readable):
                if p.name in todo or made_at(p) > made_at(step):
                    todo[step.name] = f"{p.name} re-runs" if p.name in todo else f"{p.name} was re-made after it"
                    changed = True
                    break
    if checkpoints:  # the final weights are results (checked above); the epoch snapshots are not
        for step in reversed(steps):  # consumers come after producers: one backward pass suffices
            if step.name in todo and isinstance(step.config, TrajectoryConfig):
                for p in producers(step, readable):
                    if (isinstance(p.config, PretrainConfig) and p.name not in todo
                            and not checkpoint_path(p.config).exists()):
                        todo[p.name] = f"{CHECKPOINT_NEEDED}{step.name} ({checkpoint_path(p.config)} is missing)"
    return {step.name: todo[step.name] for step in steps if step.name in todo}


def currency(preset: str | Path, results_dir: str = "results") -> tuple[frozenset[str], dict[str, str]]:
    """The step names of ``preset`` and why each of its stale results is stale (:func:`rerun_reasons`,
    checkpoints aside), kept on disk for other processes (the book's pages each ask it) under a digest
    of everything the answer depends on: the preset file, the package's and notebooks' sources and
    every stored file of the preset. Without a cache folder (``$MIMSTUDY_REACH_CACHE=off``) it is computed."""
    from mimstudy.study.staleness import reach_cache

    steps = plan(preset, results_dir=results_dir)
    names = frozenset(step.name for step in steps)
    folder = reach_cache()
    if folder is None:
        return names, rerun_reasons(steps, checkpoints=False)
    digest = hashlib.sha256(str(Path(results_dir).resolve()).encode())
    stored = Path(results_dir) / (steps[0].config.preset if steps else Path(preset).stem)
    files = [preset_file(preset)] + sorted(REPO_ROOT.glob("mimstudy/**/*.py")) + sorted(NOTEBOOK_DIR.glob("*.ipynb")) \
        + sorted(p for p in stored.rglob("*") if p.is_file() and p.suffix != ".ipynb")
    for path in files:
        digest.update(str(path).encode() + b"\0" + path.read_bytes())
    cached = folder / f"currency-{digest.hexdigest()}.json"
    if cached.is_file():
        return names, json.loads(cached.read_text())
    reasons = rerun_reasons(steps, checkpoints=False)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached) as tmp:
            Path(tmp).write_text(json.dumps(reasons))
    except OSError:
        pass  # a read-only cache folder only costs time
    return names, reasons


def steps_to_run(steps: list[Step], force: bool = False) -> list[Step]:
    """The steps whose results are missing or stale, plus pre-training whose checkpoint is needed
    (:func:`rerun_reasons` says why each runs)."""
    reasons = rerun_reasons(steps, force)
    return [step for step in steps if step.name in reasons]


def execute(step: Step, force: bool = False, log=print, fresh: str = "") -> None:
    """Execute one step's notebook with papermill, writing the executed copy beside its dataset.

    ``fresh``: a reason to train a pre-training run from scratch rather than resume its checkpoint
    (its finished result is stale because its code changed).
    """
    import papermill

    if isinstance(step.config, PretrainConfig):
        ckpt = checkpoint_path(step.config)
        if ckpt.exists() and (force or fresh or stale_checkpoint_fields(step.config, load_checkpoint(ckpt))):
            log(f"    removing {run_dir(step.config)}: "
                + ("--force" if force else fresh or "its parameters changed"))
            shutil.rmtree(run_dir(step.config))  # train from scratch; an unchanged run resumes instead
    if isinstance(step.config, DownstreamConfig) and force and run_folder(step.config).exists():
        shutil.rmtree(run_folder(step.config))  # --force fine-tunes from the start
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
               dry_run: bool = False, log=print, runs: list[str] | None = None, jobs: int = 1,
               executor: str = "local", resources=None) -> list[Step]:
    """Run every step of ``preset`` (or of the run ids ``runs``) that is not current.

    ``jobs > 1`` executes independent groups of runs (:func:`independent_groups`) in that many
    ``mimstudy run`` processes at once, each with ``cpu_count // jobs`` torch threads. ``executor``
    ``slurm`` (or ``submitit-local``) submits each group as a job instead, with ``resources``
    (:class:`mimstudy.study.executor.JobResources`; default: the preset's ``executor:`` block).
    Returns the steps that were executed (or, for a dry run, would be).
    """
    if jobs < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs}")
    steps = select_runs(plan(preset, results_dir, runs_dir), runs)
    pinned = numerics.pin()  # every notebook kernel started from here on computes on the common baseline
    if pinned and not dry_run:
        log("numerics pinned to " + numerics.BASELINE + ": " + ", ".join(f"{k}={v}" for k, v in pinned.items())
            + f" ({numerics.SWITCH}=native turns this off)")
    reasons = rerun_reasons(steps, force)
    todo = [step for step in steps if step.name in reasons]
    for step in steps:
        if step.name not in reasons:
            log(f"[skip] {step.name}: {step.result} is current (same parameters and code); --force re-runs it")
    if todo and not dry_run:
        check_available()  # fail before any notebook starts when the dataset is missing
    if executor != "local" and not dry_run and todo:
        submit_to_executor(preset, steps, todo, reasons, force, results_dir, runs_dir, executor, resources, log)
        return todo
    if jobs > 1 and not dry_run and todo:
        run_in_parallel(preset, independent_groups(todo), jobs, force, results_dir, runs_dir, log)
        return todo
    for i, step in enumerate(todo, 1):
        log(f"[{i}/{len(todo)}] {step.name} -> {step.result}" + (" (dry run)" if dry_run else "")
            + f": {reasons[step.name]}")
        if dry_run:
            continue
        start = time.perf_counter()
        finished_but_stale = reasons[step.name].startswith(("code changed", "code not recorded"))
        execute(step, force=force, log=log, fresh=reasons[step.name] if finished_but_stale else "")
        log(f"[{i}/{len(todo)}] {step.name} done in {time.perf_counter() - start:.0f} s")
    return todo


def submit_to_executor(preset: str | Path, steps: list[Step], todo: list[Step], reasons: dict[str, str], force: bool,
                       results_dir: str, runs_dir: str, executor: str, resources, log=print) -> None:
    """:func:`run_preset`'s ``--executor slurm``: one job per independent group of the steps to run."""
    from mimstudy.study.executor import TORCHRUN_MODULES, JobResources, submit_groups

    resources = resources or JobResources.from_preset(preset_file(preset))
    groups = independent_groups(todo)
    distributed_runs = {group[0]: [(s.notebook, s.config.run_id,
                                    reasons[s.name].startswith(("code changed", "code not recorded")))
                                   for s in todo if s.notebook in TORCHRUN_MODULES and s.config.run_id in group]
                        for group in groups}
    submit_groups(preset, steps[0].config.preset, groups, distributed_runs, force, results_dir, runs_dir, executor,
                  resources, log)


IPYKERNEL_TCP_NOTICE = "Kernel is running over TCP without encryption"


class ParallelRunError(RuntimeError):
    """One or more parallel ``mimstudy run`` processes failed; the message lists their run ids."""


def run_in_parallel(preset: str | Path, groups: list[list[str]], jobs: int, force: bool, results_dir: str,
                    runs_dir: str, log=print) -> None:
    """Execute each group of run ids in its own ``mimstudy run --runs ...`` process, ``jobs`` at a time.

    Each process's lines are logged prefixed with its group's first run id. Every group runs even
    when another fails; then :class:`ParallelRunError` names the failed groups.
    """
    env = dict(os.environ)
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    env.setdefault("OMP_NUM_THREADS", threads)
    env.setdefault("MKL_NUM_THREADS", env["OMP_NUM_THREADS"])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["MIMSTUDY_NESTED_RUN"] = "1"  # the outer run logs the piece (mimstudy.study.ledger), not each group
    lock = threading.Lock()
    log(f"running {len(groups)} independent group(s) in {min(jobs, len(groups))} processes "
        f"of {env['OMP_NUM_THREADS']} thread(s) each")

    def run_group(group: list[str]) -> int:
        command = [sys.executable, "-m", "mimstudy.study.cli", "run", "--preset", str(preset), "--runs", ",".join(group),
                   "--results-dir", results_dir, "--runs-dir", runs_dir] + (["--force"] if force else [])
        with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              cwd=Path.cwd()) as process:
            for line in process.stdout:
                if IPYKERNEL_TCP_NOTICE in line:  # each kernel's start-up notice about local TCP
                    continue
                with lock:
                    log(f"[{group[0]}] {line.rstrip()}")
        return process.returncode

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        codes = list(pool.map(run_group, groups))
    failed = [",".join(g) for g, code in zip(groups, codes) if code != 0]
    if failed:
        raise ParallelRunError(f"the runs {failed} failed (their lines above say why); the other groups finished")
