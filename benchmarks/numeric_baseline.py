"""What pinning the CPU's numeric code paths, and compiling the step, cost and change: per objective.

    python benchmarks/numeric_baseline.py                     # ~10 minutes on 2 CPU cores
    python benchmarks/numeric_baseline.py --steps 10 --modes native,pinned

A change of CPU acts like a new training seed: ATen, oneDNN and MKL each pick the widest vector
instructions the processor has (AVX-512 here, AVX2 on an AMD EPYC), and their sums round
differently. :mod:`mimstudy.numerics` pins all three to a common x86-64 baseline (AVX2). For each
mode (``native``: nothing pinned; ``pinned``: the study's baseline; ``pinned_compile``: the baseline
with the training step's objective under ``torch.compile``) and each pre-training objective of the
``cpu`` preset on ``vit_micro_32_sincos`` (batch 128, one torch thread: a ``--jobs 2`` piece's share
of two cores), a fresh process times ``--steps`` optimizer steps after a warm-up, twice, and keeps
a digest of the weights after them: the same digest twice is determinism within the mode; a digest
differing between modes is the arithmetic changing. Results go to
``results/benchmarks/numeric_baseline.nc`` with provenance and the machine's fp32 matmul rate.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

MODES = ("native", "pinned", "pinned_compile")
OBJECTIVES = ("supervised", "simmim", "moco")
ARCH = "vit_micro_32_sincos"


def _child(objective: str, steps: int, warmup: int, compile_: bool) -> dict:
    """One measurement in this process (its environment already set): seconds per step and a weight digest."""
    import torch

    from mimstudy.config import PretrainConfig
    from mimstudy.objectives.factory import build_objective
    from mimstudy.training.optim import build_optimizer

    torch.set_num_threads(1)
    config = PretrainConfig.from_dict(dict(preset="bench", run_id="bench", objective=objective, arch=ARCH,
                                           dataset="fashion_mnist", img_size=32, batch_size=128))
    objective_ = build_objective(config)
    optimizer, scheduler = build_optimizer(objective_, 1e-3, 0.05, total_steps=warmup + steps, warmup_steps=2,
                                           min_lr=1e-5)
    step_fn = torch.compile(objective_) if compile_ else objective_
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(warmup + steps, 128, 1, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (warmup + steps, 128), generator=generator)
    on_step = getattr(objective_, "on_step", None)
    objective_.train()
    start_compile = time.perf_counter()
    times = []
    for i in range(warmup + steps):
        torch.manual_seed(i)
        if on_step is not None:
            on_step(i, warmup + steps)
        start = time.perf_counter()
        loss, _ = step_fn(images[i], labels[i])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(objective_.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        times.append(time.perf_counter() - start)
        if i == warmup - 1:
            warm_seconds = time.perf_counter() - start_compile
    digest = hashlib.sha256()
    for name, tensor in sorted(objective_.state_dict().items()):
        digest.update(name.encode() + tensor.detach().contiguous().numpy().tobytes())
    return {"seconds_per_step": sorted(times[warmup:])[len(times[warmup:]) // 2], "warmup_seconds": warm_seconds,
            "digest": digest.hexdigest()[:16], "loss": float(loss),
            "capability": torch.backends.cpu.get_cpu_capability()}


def measure(mode: str, objective: str, steps: int, warmup: int) -> dict:
    """:func:`_child` in a fresh process with ``mode``'s environment."""
    from mimstudy.numerics import pinned_environment

    env = {k: v for k, v in os.environ.items() if k not in pinned_environment()}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if mode != "native":
        env.update(pinned_environment())
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import numeric_baseline as b; "
            f"print(json.dumps(b._child({objective!r}, {steps}, {warmup}, {mode.endswith('compile')})))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--objectives", default=",".join(OBJECTIVES))
    parser.add_argument("--out", default="results/benchmarks/numeric_baseline.nc")
    args = parser.parse_args(argv)

    import numpy as np
    import xarray as xr

    from mimstudy.numerics import matmul_gflops
    from mimstudy.results import save_dataset

    modes, objectives = args.modes.split(","), args.objectives.split(",")
    rows = {}
    for objective in objectives:
        for mode in modes:
            runs = [measure(mode, objective, args.steps, args.warmup) for _ in range(2)]
            rows[mode, objective] = runs
            print(f"{objective:11s} {mode:15s} {[round(r['seconds_per_step'], 4) for r in runs]} s/step, "
                  f"warm-up {runs[0]['warmup_seconds']:.1f} s, digests {[r['digest'] for r in runs]}, "
                  f"capability {runs[0]['capability']}", flush=True)
    shape = (len(modes), len(objectives), 2)

    def grid(key):
        return (("mode", "objective", "repeat"),
                np.array([[[r[key] for r in rows[m, o]] for o in objectives] for m in modes]).reshape(shape))

    ds = xr.Dataset({"seconds_per_step": grid("seconds_per_step"), "warmup_seconds": grid("warmup_seconds"),
                     "weights_digest": grid("digest"), "final_loss": grid("loss"), "cpu_capability": grid("capability")},
                    coords={"mode": list(modes), "objective": list(objectives), "repeat": [0, 1]})
    ds.attrs["matmul_gflops_1thread"] = float(matmul_gflops(threads=1))
    ds.attrs["arch"], ds.attrs["batch_size"] = ARCH, 128
    print("saved:", save_dataset(ds, args.out, vars(args), preset="benchmark", seed=0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
