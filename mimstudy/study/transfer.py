"""Transfer to a downstream task from the command line, on one process or on several through torchrun (DDP).

One process (the CPU, or one GPU when CUDA is available):

    python -m mimstudy.study.transfer --preset quick --run-id pose_vit_simmim

All GPUs of one machine (or N CPU processes with gloo):

    torchrun --standalone --nproc_per_node=8 -m mimstudy.study.transfer --preset paper --run-id pose_coco_vit_simmim

Every field of :class:`mimstudy.config.DownstreamConfig` is a flag of the same name
(:mod:`mimstudy.study.flags`: the preset's downstream run ``--run-id`` gives the defaults, the flags
override them), so the command above fine-tunes exactly the run ``mimstudy run --preset paper``
would and writes the same result (``results/<preset>/downstream/<run_id>.nc``); ``mimstudy run``
then finds it current. ``--batch-size`` is the global batch, split evenly across the processes
(:func:`mimstudy.downstream.transfer.training_batches`); rank 0 writes the checkpoints and the result.
A dry run takes one optimisation step per seed and scores the test split:

    python -m mimstudy.study.transfer --preset paper --run-id pose_coco_vit_simmim --max-steps 1 \
        --data-dir /path/to/tiny_folder --train-size 2 --test-size 2 --batch-size 2 --no-results
"""

from __future__ import annotations

import sys

from mimstudy.config import DownstreamConfig
from mimstudy.study.flags import config_parser, run_command


def build_parser():
    """One flag per :class:`DownstreamConfig` field (:mod:`mimstudy.study.flags`) and the command's own."""
    parser = config_parser(DownstreamConfig, "python -m mimstudy.study.transfer", __doc__)
    parser.add_argument("--force", action="store_true", help="delete the run's fine-tuning checkpoints and start over")
    parser.add_argument("--no-results", action="store_true", help="print the metrics; write no result dataset")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    force, no_results = args.pop("force"), args.pop("no_results")
    from mimstudy.downstream.transfer import run_downstream, run_folder  # after the flags: --help needs no torch

    def transfer(config: DownstreamConfig, device, main_process: bool) -> None:
        from mimstudy.results import save_result

        result = run_downstream(config, progress=main_process)
        if main_process:
            metrics = [name for name in result.data_vars if result[name].dims == ("seed",)]
            for name in metrics:
                print(f"{name}: " + " ".join(f"{v:.4g}" for v in result[name].values) +
                      f" (trivial {float(result[f'trivial_{name}']):.4g})")
            if not no_results:
                print("saved:", save_result(result, config))

    return run_command("mimstudy.study.transfer", DownstreamConfig, args, force, run_folder, transfer)

if __name__ == "__main__":
    sys.exit(main())
