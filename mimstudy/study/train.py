"""Pre-train from the command line, on one process or on several through torchrun (DDP).

One process (the CPU, or one GPU when CUDA is available):

    python -m mimstudy.study.train --preset quick --run-id vit_simmim

All GPUs of one machine (or N CPU processes with gloo), same weights up to rounding:

    torchrun --standalone --nproc_per_node=4 -m mimstudy.study.train --preset quick --run-id vit_simmim

Every field of :class:`mimstudy.config.PretrainConfig` is a flag of the same name (``run_id`` ->
``--run-id``; booleans as ``--bf16`` / ``--no-bf16``). When the preset file holds a pre-training
run named ``--run-id``, its parameters are the defaults and the flags given override them, so the
command above trains exactly the run ``mimstudy run --preset quick`` would, and writes the same
checkpoint (``runs/<preset>/<run_id>/``) and training curves (``results/<preset>/pretrain/<run_id>.nc``);
``mimstudy run`` then finds that run current and goes on with the probes (flags that change the
preset's parameters make another run, which ``mimstudy run`` would redo; ``device`` and
``keep_epochs`` only let it resume the finished checkpoint). Otherwise the dataclass defaults apply. ``--batch-size`` is the global batch, split evenly across the processes.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import typing

from mimstudy import distributed
from mimstudy.models.checkpoints.state import CheckpointError
from mimstudy.config import ConfigError, PretrainConfig
from mimstudy.data.fashion_mnist import DatasetError

_BOOL_FLAGS = argparse.BooleanOptionalAction


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    """One flag per config field, typed from the dataclass; unset flags are absent from the namespace."""
    parser = argparse.ArgumentParser(prog="python -m mimstudy.study.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    hints = typing.get_type_hints(PretrainConfig)
    defaults = PretrainConfig()
    fields = parser.add_argument_group("parameters (the fields of PretrainConfig)")
    for field in dataclasses.fields(PretrainConfig):
        kind = hints[field.name]
        help_ = f"default: preset's value, else {getattr(defaults, field.name)!r}"
        if kind is bool:
            fields.add_argument(flag(field.name), dest=field.name, action=_BOOL_FLAGS, default=argparse.SUPPRESS, help=help_)
        else:
            fields.add_argument(flag(field.name), dest=field.name, type=kind, default=argparse.SUPPRESS,
                                metavar=kind.__name__.upper(), help=help_)
    parser.add_argument("--force", action="store_true", help="delete the run's checkpoints and train from scratch")
    parser.add_argument("--stop-after-epoch", type=int, default=None,
                        help="end after this many completed epochs, as an interrupted run would (resume later)")
    parser.add_argument("--no-results", action="store_true", help="write the checkpoint only, not the curves dataset")
    return parser


def preset_defaults(preset: str, run_id: str, results_dir: str, runs_dir: str) -> dict | None:
    """The parameters of pre-training run ``run_id`` in the preset file, or None when there is none."""
    from mimstudy.study.runner import plan, preset_file

    try:
        preset_file(preset)
    except ConfigError:
        return None
    for step in plan(preset, results_dir=results_dir, runs_dir=runs_dir):
        if isinstance(step.config, PretrainConfig) and step.config.run_id == run_id:
            return step.config.to_dict()
    return None


def config_from_args(given: dict) -> tuple[PretrainConfig, bool]:
    """The config of the flags given over the preset's run (when there is one); and whether it came from a preset."""
    base = PretrainConfig().to_dict()
    base.update({k: given[k] for k in ("preset", "run_id", "results_dir", "runs_dir") if k in given})
    from_preset = preset_defaults(base["preset"], base["run_id"], base["results_dir"], base["runs_dir"])
    if from_preset is not None:
        base = from_preset
    return PretrainConfig.from_dict({**base, **given}), from_preset is not None


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    force, stop_after, no_results = args.pop("force"), args.pop("stop_after_epoch"), args.pop("no_results")
    try:
        config, from_preset = config_from_args(args)
    except ConfigError as err:
        print(f"mimstudy.study.train: {err}", file=sys.stderr)
        return 2
    device = distributed.setup(config.device)
    main_process = distributed.is_main_process()

    from mimstudy.training.pretrain import pretrain, run_dir
    from mimstudy.results import save_result

    try:
        if main_process:
            print(f"{config.preset}/{config.run_id} ({'preset run' if from_preset else 'no preset run: defaults'}"
                  f" + flags) on {distributed.world_size()} process(es), {device}: {config.to_json()}", flush=True)
            if force and run_dir(config).exists():
                shutil.rmtree(run_dir(config))
        distributed.barrier()
        try:
            result = pretrain(config, device=device, progress=main_process, stop_after_epoch=stop_after)
        except (CheckpointError, DatasetError) as err:
            print(f"mimstudy.study.train: {err}", file=sys.stderr)
            return 2
        if main_process:
            for record in result.history:
                print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
            print("checkpoint:", result.checkpoint)
            finished = bool(result.history) and result.history[-1]["epoch"] == config.epochs
            if finished and not no_results:
                print("saved:", save_result(result.curves(config), config))
    finally:
        distributed.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
