"""The ``mimstudy`` command: ``mimstudy run --preset quick`` and ``mimstudy plan --preset ci``."""

from __future__ import annotations

import argparse
import sys

from mimstudy.config import ConfigError
from mimstudy.data.fashion_mnist import DatasetError


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """``--executor`` and the job resources that override the preset's ``executor:`` block."""
    from mimstudy.study.executor import EXECUTORS

    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="local: this machine (with --jobs); slurm: one submitit job per independent group "
                             "of runs; submitit-local: the same jobs as local processes (default: local)")
    for name, kind, help_ in (("partition", str, "Slurm partition"), ("gpus", int, "GPUs per job"),
                              ("cpus", int, "CPU cores per job"), ("time-min", int, "time limit per job, minutes"),
                              ("mem-gb", int, "memory per job, GB"), ("account", str, "Slurm account")):
        parser.add_argument(f"--{name}", type=kind, default=None,
                            help=f"{help_} (overrides the preset's executor: block)")


def resources_from_args(args: argparse.Namespace):
    """The job resources of a cluster executor (preset block + flags), ``None`` for ``--executor local``."""
    if args.executor == "local":
        return None
    from mimstudy.study.executor import JobResources
    from mimstudy.study.runner import preset_file

    return JobResources.from_preset(preset_file(args.preset), partition=args.partition, gpus=args.gpus,
                                    cpus=args.cpus, time_min=args.time_min, mem_gb=args.mem_gb,
                                    account=args.account)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mimstudy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (("run", "execute a preset's notebooks with papermill"),
                        ("plan", "list a preset's steps and whether each would run")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--preset", default="quick", help="preset name in presets/ or a .yaml path (default: quick)")
        p.add_argument("--force", action="store_true", help="re-run steps whose results are current")
        p.add_argument("--results-dir", default="results", help="where datasets and executed notebooks go")
        p.add_argument("--runs-dir", default="runs", help="where training checkpoints go")
        p.add_argument("--runs", default=None,
                       help="comma-separated run ids: only these runs (all their notebooks) and the "
                            "pre-training they read (default: every run of the preset)")
        p.add_argument("--jobs", type=int, default=1,
                       help="run independent groups of runs in this many processes at once, "
                            "splitting the CPU threads between them (default: 1)")
        add_executor_arguments(p)
    args = parser.parse_args(argv)
    runs = [r.strip() for r in args.runs.split(",") if r.strip()] if args.runs is not None else None

    from mimstudy.study.executor import ClusterRunError
    from mimstudy.study.runner import ParallelRunError, run_preset

    try:
        run_preset(args.preset, force=args.force, results_dir=args.results_dir, runs_dir=args.runs_dir,
                   dry_run=args.command == "plan", runs=runs, jobs=args.jobs, executor=args.executor,
                   resources=resources_from_args(args))
    except (ConfigError, DatasetError) as err:
        print(f"mimstudy: {err}", file=sys.stderr)
        return 2
    except (ParallelRunError, ClusterRunError) as err:
        print(f"mimstudy: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # papermill reports a failing cell with the notebook's traceback
        if type(err).__name__ == "PapermillExecutionError":
            print(f"mimstudy: a notebook failed: {err}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
