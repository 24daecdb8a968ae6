"""The ``mimstudy`` command: ``mimstudy run --preset quick``, ``mimstudy plan --preset ci`` and
``mimstudy verify --preset cpu --runs vit_sup-s0`` (re-make stored results and compare them)."""

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
    ledger = sub.add_parser("ledger", help="a long preset's pieces: measured or estimated wall time, committed and current")
    ledger.add_argument("--preset", default="cpu", help="preset name in presets/ or a .yaml path (default: cpu)")
    ledger.add_argument("--results-dir", default="results", help="where datasets are (default: results)")
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
    v = sub.add_parser("verify", help="re-make stored results in a scratch folder and compare every value "
                                      "(bitwise equal, or the largest difference)")
    v.add_argument("--preset", required=True, help="preset name in presets/ or a .yaml path")
    v.add_argument("--runs", required=True, help="comma-separated run ids (patterns allowed) to re-make and compare")
    v.add_argument("--results-dir", default="results", help="where the stored datasets are (default: results)")
    v.add_argument("--scratch", default=None, help="where to re-make them (default: a new temporary folder)")
    v.add_argument("--jobs", type=int, default=1, help="as for mimstudy run (default: 1)")
    args = parser.parse_args(argv)
    runs = [r.strip() for r in args.runs.split(",") if r.strip()] if getattr(args, "runs", None) else None
    if args.command == "verify":
        return _verify(args, runs)
    if args.command == "ledger":
        from mimstudy.study.ledger import ledger, ledger_markdown
        from mimstudy.study.runner import plan

        try:
            rows = ledger(args.preset, args.results_dir)
            print(ledger_markdown(rows, plan(args.preset)[0].config.preset) if rows else
                  f"{args.preset} lists no pieces")
        except ConfigError as err:
            print(f"mimstudy: {err}", file=sys.stderr)
            return 2
        return 0

    from mimstudy.study.executor import ClusterRunError
    from mimstudy.study.runner import ParallelRunError, run_preset

    import os
    import time

    try:
        start = time.perf_counter()
        executed = run_preset(args.preset, force=args.force, results_dir=args.results_dir, runs_dir=args.runs_dir,
                              dry_run=args.command == "plan", runs=runs, jobs=args.jobs, executor=args.executor,
                              resources=resources_from_args(args))
        if args.command == "run" and runs and executed and args.executor == "local" \
                and not os.environ.get("MIMSTUDY_NESTED_RUN"):
            from mimstudy.study.ledger import append_log

            path = append_log(args.results_dir, executed[0].config.preset, args.runs, time.perf_counter() - start,
                              args.jobs, len(executed))
            print(f"logged in {path}")
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


def _verify(args: argparse.Namespace, runs: list[str]) -> int:
    from mimstudy.study.runner import ParallelRunError
    from mimstudy.study.verify import verify

    try:
        differences = verify(args.preset, runs, args.results_dir, args.scratch, args.jobs)
    except (ConfigError, DatasetError, ParallelRunError) as err:
        print(f"mimstudy: {err}", file=sys.stderr)
        return 2
    return 0 if differences and all(d.equal for d in differences) else 1


if __name__ == "__main__":
    sys.exit(main())
