"""Command-line flags from a run's config dataclass, over the preset's parameters of that run.

Every field of the config class is a flag of the same name (``run_id`` -> ``--run-id``; booleans as
``--bf16`` / ``--no-bf16``); unset flags are absent from the parsed namespace. When the preset file
holds a run of that kind named ``--run-id``, its parameters are the defaults and the flags given
override them, so a command line trains exactly the run ``mimstudy run --preset P`` would (and
writes the same files); otherwise the dataclass defaults apply. Serves the pre-training
(:mod:`mimstudy.study.train`) and the downstream transfer (:mod:`mimstudy.study.transfer`) commands.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import typing
from collections.abc import Callable
from pathlib import Path

from mimstudy.config import ConfigError, RunConfig


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def config_parser(config_class: type[RunConfig], prog: str, description: str) -> argparse.ArgumentParser:
    """One flag per field of ``config_class``, typed from the dataclass; unset flags are absent from the namespace."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    hints = typing.get_type_hints(config_class)
    defaults = config_class()
    fields = parser.add_argument_group(f"parameters (the fields of {config_class.__name__})")
    for field in dataclasses.fields(config_class):
        kind = hints[field.name]
        help_ = f"default: preset's value, else {getattr(defaults, field.name)!r}"
        if kind is bool:
            fields.add_argument(flag(field.name), dest=field.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help_)
        else:
            fields.add_argument(flag(field.name), dest=field.name, type=kind, default=argparse.SUPPRESS,
                                metavar=kind.__name__.upper(), help=help_)
    return parser


def preset_defaults(config_class: type[RunConfig], preset: str, run_id: str, results_dir: str,
                    runs_dir: str) -> dict | None:
    """The parameters of the ``config_class`` run ``run_id`` in the preset file, or None when there is none."""
    from mimstudy.study.runner import plan, preset_file

    try:
        preset_file(preset)
    except ConfigError:
        return None
    for step in plan(preset, results_dir=results_dir, runs_dir=runs_dir):
        if isinstance(step.config, config_class) and step.config.run_id == run_id:
            return step.config.to_dict()
    return None


def config_from_flags(config_class: type[RunConfig], given: dict) -> tuple[RunConfig, bool]:
    """The config of the flags given over the preset's run (when there is one); and whether it came from a preset."""
    base = config_class().to_dict()
    base.update({k: given[k] for k in ("preset", "run_id", "results_dir", "runs_dir") if k in given})
    from_preset = preset_defaults(config_class, base["preset"], base["run_id"], base["results_dir"], base["runs_dir"])
    if from_preset is not None:
        base = from_preset
    return config_class.from_dict({**base, **given}), from_preset is not None


def start_run(config: RunConfig, from_preset: bool, device, folder: Path, force: bool) -> None:
    """On the main process: say what runs where (preset run or defaults, the flags given, processes,
    device) and, with ``force``, delete the run's checkpoint ``folder``; every process then waits for it."""
    from mimstudy import distributed

    if distributed.is_main_process():
        print(f"{config.preset}/{config.run_id} ({'preset run' if from_preset else 'no preset run: defaults'}"
              f" + flags) on {distributed.world_size()} process(es), {device}: {config.to_json()}", flush=True)
        if force and folder.exists():
            shutil.rmtree(folder)
    distributed.barrier()


def run_command(prog: str, config_class: type[RunConfig], given: dict, force: bool,
                folder: Callable[[RunConfig], Path], work: Callable[[RunConfig, object, bool], None]) -> int:
    """What the pre-training and transfer commands share: the config of the flags ``given``
    (:func:`config_from_flags`, which validates it), the processes set up (:mod:`mimstudy.distributed`),
    :func:`start_run`, then ``work(config, device, main_process)``; the exit status. A bad parameter,
    checkpoint, dataset or missing file is one line on stderr (``prog: why``) and status 2."""
    from mimstudy import distributed
    from mimstudy.data.fashion_mnist import DatasetError
    from mimstudy.models.checkpoints.state import CheckpointError

    try:
        config, from_preset = config_from_flags(config_class, given)
    except ConfigError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 2
    device = distributed.setup(config.device)
    try:
        start_run(config, from_preset, device, folder(config), force)
        try:
            work(config, device, distributed.is_main_process())
        except (CheckpointError, DatasetError, FileNotFoundError) as err:
            print(f"{prog}: {err}", file=sys.stderr)
            return 2
    finally:
        distributed.cleanup()
    return 0
