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

import sys

from mimstudy.config import PretrainConfig
from mimstudy.study.flags import config_from_flags, config_parser, run_command


def build_parser():
    """One flag per :class:`PretrainConfig` field (:mod:`mimstudy.study.flags`) and the command's own."""
    parser = config_parser(PretrainConfig, "python -m mimstudy.study.train", __doc__)
    parser.add_argument("--force", action="store_true", help="delete the run's checkpoints and train from scratch")
    parser.add_argument("--stop-after-epoch", type=int, default=None,
                        help="end after this many completed epochs, as an interrupted run would (resume later)")
    parser.add_argument("--no-results", action="store_true", help="write the checkpoint only, not the curves dataset")
    return parser


def config_from_args(given: dict) -> tuple[PretrainConfig, bool]:
    """The config of the flags given over the preset's run (when there is one); and whether it came from a preset."""
    return config_from_flags(PretrainConfig, given)


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    force, stop_after, no_results = args.pop("force"), args.pop("stop_after_epoch"), args.pop("no_results")
    from mimstudy.training.pretrain import pretrain, run_dir  # after the flags: --help needs no torch

    def train(config: PretrainConfig, device, main_process: bool) -> None:
        from mimstudy.results import save_result

        result = pretrain(config, device=device, progress=main_process, stop_after_epoch=stop_after)
        if main_process:
            for record in result.history:
                print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
            print("checkpoint:", result.checkpoint)
            finished = bool(result.history) and result.history[-1]["epoch"] == config.epochs
            if finished and not no_results:
                print("saved:", save_result(result.curves(config), config))

    return run_command("mimstudy.study.train", PretrainConfig, args, force, run_dir, train)

if __name__ == "__main__":
    sys.exit(main())
