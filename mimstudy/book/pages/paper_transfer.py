"""The paper-scale page's Section 4 table (``book/paper_scale.md``): every downstream run of the ``paper``
preset, the benchmark it reads, the command that runs it and an estimate of its cost.

The cost is the backbone's training compute only: SwinV2-B at 192 px takes :data:`BACKBONE_GMACS`
multiply-accumulates a forward pass (timm's model card of ``swinv2_base_window12_192``), a training
step about three forward passes (forward, and backward at twice the cost), at
:data:`UTILISATION` of an A100's dense bf16 peak (:data:`A100_TFLOPS`). Images seen are
``train_size x epochs`` per seed (a tracking pair is two crops), plus one seed per rate of
``lr_grid``. It is a lower bound: the heads, evaluation and JPEG decoding add to it (decoding often
bounds the speed: give ``num_workers`` enough CPU cores), and none of it is measured here.
"""

from __future__ import annotations

import pandas as pd

BACKBONE_GMACS = 11.9  # swinv2_base_window12_192, one 192x192 image, forward
A100_TFLOPS = 312.0  # dense bf16 peak
UTILISATION = 0.4


def training_images(config) -> int:
    """Images through the backbone in training: per seed (and per rate of ``lr_grid``), ``train_size x epochs``."""
    crops = 2 if config.task == "tracking" else 1
    fits = len(config.seeds()) + len(config.learning_rates())
    return config.train_size * config.epochs * crops * fits


def a100_hours(config) -> float:
    flops = training_images(config) * 3 * 2 * BACKBONE_GMACS * 1e9
    return flops / (A100_TFLOPS * 1e12 * UTILISATION) / 3600


def section4_table(preset: str = "paper") -> pd.DataFrame:
    """One row per downstream run of ``preset``: benchmark, data, recipe, command and A100-hours."""
    from mimstudy.downstream.tasks import get_task
    from mimstudy.study.runner import plan

    rows = []
    for step in plan(preset):
        if step.notebook != "downstream":
            continue
        c = step.config
        rows.append({"run": c.run_id, "task": get_task(c.task).module.__name__.rsplit(".", 1)[-1],
                     "data": c.data_dir, "from": c.init_from, "epochs": c.epochs, "lr": c.lr,
                     "layer decay": c.layer_decay, "images x epochs": training_images(c),
                     "A100-hours (lower bound)": round(a100_hours(c), 1),
                     "command": f"mimstudy run --preset {preset} --runs {c.run_id}"})
    return pd.DataFrame(rows).set_index("run")
