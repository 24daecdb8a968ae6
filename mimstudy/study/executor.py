"""Run a preset's independent groups of runs as cluster jobs through submitit (``--executor slurm``).

Each independent group (:func:`mimstudy.study.runner.independent_groups`: a run, and the runs that
read its checkpoint, after it) becomes one job that executes ``mimstudy run --preset P --runs
<group>`` on its node, so the steps of a group keep their order and the runner's skipping of current
results applies inside the job. A job with more than one GPU first trains the group's pre-training
runs with all of them, through ``torch.distributed.run`` (torchrun) on ``mimstudy.study.train``, and
its downstream (Section 4) runs likewise on ``mimstudy.study.transfer`` (:data:`TORCHRUN_MODULES`),
then goes on with the rest on one process. A job that reaches its time limit is requeued by
submitit and resumes: training restarts from its last checkpoint.

The job's resources come from the preset's optional ``executor:`` block, overridden by flags::

    executor:
      partition: gpu      # Slurm partition (default: the cluster's)
      gpus: 1             # GPUs per job (1 node)
      cpus: 8             # CPU cores per job
      time_min: 120       # wall-clock limit per job, in minutes
      mem_gb: 32          # memory per job
      account: ""         # Slurm account, when the cluster wants one
      folder: runs/submitit   # submitit's job scripts and logs (%j: the job id)

``--executor submitit-local`` runs the same jobs as local processes through submitit (what the
tests use: no Slurm needed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import yaml

from mimstudy.config import ConfigError

EXECUTORS = ("local", "slurm", "submitit-local")
TORCHRUN_MODULES = {"pretrain": "mimstudy.study.train", "downstream": "mimstudy.study.transfer"}  # notebook -> command
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class JobResources:
    """What each job asks the cluster for."""

    partition: str = ""
    gpus: int = 0
    cpus: int = 2
    time_min: int = 60
    mem_gb: int = 16
    account: str = ""
    folder: str = "runs/submitit"

    def validate(self) -> None:
        for name in ("gpus", "cpus", "time_min", "mem_gb"):
            value = getattr(self, name)
            minimum = 0 if name == "gpus" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ConfigError(f"executor {name} must be an integer >= {minimum}, got {value!r}")

    @classmethod
    def from_preset(cls, preset_path: str | Path, **overrides) -> "JobResources":
        """The preset's ``executor:`` block (absent: the defaults), then ``overrides`` that are not None."""
        spec = yaml.safe_load(Path(preset_path).read_text()) or {}
        block = spec.get("executor") or {}
        if not isinstance(block, dict):
            raise ConfigError(f"{preset_path}: 'executor' must be a mapping such as {{gpus: 1, time_min: 60}}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(block) - known)
        if unknown:
            raise ConfigError(f"{preset_path}: unknown executor setting(s) {unknown}; valid: {sorted(known)}")
        resources = replace(cls(**block), **{k: v for k, v in overrides.items() if v is not None})
        resources.validate()
        return resources


def group_commands(preset: str, group: list[str], distributed_runs: list[tuple[str, str, bool]], force: bool,
                   results_dir: str, runs_dir: str, gpus: int) -> list[list[str]]:
    """The command lines one job runs, in order: with ``gpus > 1``, torchrun over all of them for each
    ``(notebook, run id, from scratch)`` of ``distributed_runs`` (the group's pre-training and downstream
    runs that have to run, in order; from scratch when a finished result is stale), on that notebook's
    command (:data:`TORCHRUN_MODULES`), then ``mimstudy run`` for the whole group (which finds those runs
    current and goes on with the rest)."""
    commands = []
    if gpus > 1:
        for notebook, run_id, fresh in distributed_runs:
            commands.append([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
                             "-m", TORCHRUN_MODULES[notebook], "--preset", str(preset), "--run-id", run_id,
                             "--results-dir", results_dir, "--runs-dir", runs_dir]
                            + (["--force"] if force or fresh else []))
    commands.append([sys.executable, "-m", "mimstudy.study.cli", "run", "--preset", str(preset), "--runs",
                     ",".join(group), "--results-dir", results_dir, "--runs-dir", runs_dir]
                    + (["--force"] if force else []))
    return commands


class GroupJob:
    """The callable a job runs: its commands one after the other, in ``cwd``, stopping at a failure.

    On a time-out submitit calls :meth:`checkpoint` and requeues the job; the requeued job drops
    ``--force`` so that it resumes the checkpoints written so far instead of starting over.
    """

    def __init__(self, commands: list[list[str]], cwd: str, env: dict[str, str]):
        self.commands, self.cwd, self.env = commands, cwd, env

    def __call__(self) -> str:
        env = {**os.environ, **self.env}
        for command in self.commands:
            print("$", " ".join(command), flush=True)
            subprocess.run(command, cwd=self.cwd, env=env, check=True)
        return f"done: {len(self.commands)} command(s)"

    def checkpoint(self):
        import submitit

        resumed = [[word for word in command if word != "--force"] for command in self.commands]
        return submitit.helpers.DelayedSubmission(GroupJob(resumed, self.cwd, self.env))


class ClusterRunError(RuntimeError):
    """One or more jobs failed; the message names their groups and log files."""


def make_executor(kind: str, resources: JobResources, preset_name: str):
    """A submitit executor for ``kind`` (``slurm`` or ``submitit-local``) with ``resources``."""
    import submitit

    if kind not in EXECUTORS or kind == "local":
        raise ConfigError(f"executor must be one of {list(EXECUTORS)[1:]} here, got {kind!r}")
    folder = Path(resources.folder) / preset_name / "%j"
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm" if kind == "slurm" else "local")
    except RuntimeError as err:  # no srun: not on a Slurm cluster
        raise ConfigError(f"--executor {kind}: {err} (use --executor local, or submitit-local to try the jobs "
                          "on this machine)") from err
    params = dict(name=f"mimstudy-{preset_name}", timeout_min=resources.time_min, mem_gb=resources.mem_gb,
                  cpus_per_task=resources.cpus, gpus_per_node=resources.gpus, nodes=1, tasks_per_node=1)
    if kind == "slurm":
        if resources.partition:
            params["slurm_partition"] = resources.partition
        if resources.account:
            params["slurm_account"] = resources.account
    executor.update_parameters(**params)
    return executor


def submit_groups(preset: str | Path, preset_name: str, groups: list[list[str]],
                  distributed_runs: dict[str, list[tuple[str, str, bool]]], force: bool, results_dir: str, runs_dir: str,
                  kind: str, resources: JobResources, log=print, wait: bool = True) -> list:
    """Submit one job per group (``distributed_runs[group[0]]``: its runs that torchrun trains, as for
    :func:`group_commands`) and, with ``wait``, wait for all of them; :class:`ClusterRunError`
    names the failed ones."""
    executor = make_executor(kind, resources, preset_name)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": str(resources.cpus), "MKL_NUM_THREADS": str(resources.cpus)}
    jobs = []
    with executor.batch():  # one sbatch array on Slurm
        for group in groups:
            commands = group_commands(preset, group, distributed_runs.get(group[0], []), force, results_dir, runs_dir,
                                      resources.gpus)
            jobs.append(executor.submit(GroupJob(commands, str(Path.cwd()), env)))
    for group, job in zip(groups, jobs):
        log(f"[{kind}] job {job.job_id}: {','.join(group)} (log: {job.paths.stdout})")
    if not wait:
        return jobs
    log(f"waiting for {len(jobs)} job(s) ({asdict(resources)}); Ctrl-C stops waiting, not the jobs")
    failed = []
    for group, job in zip(groups, jobs):
        try:
            job.result()
            log(f"[{kind}] job {job.job_id} done: {','.join(group)}")
        except Exception as err:  # submitit raises the job's error with its traceback
            failed.append(f"{','.join(group)} (job {job.job_id}, log {job.paths.stderr}): {str(err).strip()[-400:]}")
    if failed:
        raise ClusterRunError("these jobs failed:\n" + "\n".join(failed))
    return jobs
