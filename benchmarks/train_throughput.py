"""Training throughput of our loop against a bare timm loop, in images/s and GFLOP/s.

    python benchmarks/train_throughput.py                      # about 16 minutes on 2 CPU cores
    python benchmarks/train_throughput.py --precisions fp32    # about 4 of those 16: bf16 is slow on this CPU
    python benchmarks/train_throughput.py --archs all --steps 50 --repeats 5 --batch-size 256   # a GPU

For every objective of :data:`mimstudy.config.OBJECTIVES` and every backbone (default: those the
presets train; ``--archs all``: every study backbone of :mod:`mimstudy.models.backbones`) that it can wrap,
with and without bf16 autocast, it times

* ours: :func:`mimstudy.training.engine.train_one_epoch` with the objective, optimizer (AdamW, cosine
  schedule), gradient clipping and batches (:class:`mimstudy.data.sampling.ShardedBatches`) that
  pre-training uses, on synthetic images;
* bare: the same timm backbone in a plain ``forward -> cross-entropy -> backward -> AdamW.step``
  loop over ready-made batches.

``ratio = ours / bare`` in images/s; for the supervised objective the work is the same, so the ratio
is the loop's overhead (target >= 0.95). GFLOP/s = FLOPs of one training step (forward + backward,
counted by ``torch.utils.flop_counter.FlopCounterMode``, the optimizer not counted) x steps/s,
next to the matmul peak measured here (best fp32 ``torch.mm`` of square matrices; the bf16 ``torch.mm``
rate is recorded too). Each measurement
warms up, then runs ``--steps`` timed steps ``--repeats`` times, alternating bare and ours (both
fewer when one step is slow: about ``--max-seconds`` per loop); the best run counts (other processes
only ever slow a run down), the median is kept too. Results go
to an xarray dataset with provenance (``results/benchmarks/train_throughput.nc``).
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from torch.utils.data import TensorDataset
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from mimstudy import distributed
from mimstudy.config import OBJECTIVES, ConfigError, PretrainConfig
from mimstudy.training.engine import autocast, train_one_epoch
from mimstudy.models.backbones import ModelConfigError, available_backbones, create_backbone
from mimstudy.training.optim import build_optimizer
from mimstudy.training.pretrain import NUM_CLASSES, build_objective
from mimstudy.results import save_dataset
from mimstudy.data.sampling import ShardedBatches

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
# wall: seconds of the run; process: CPU seconds of this process, which other processes on a shared
# machine do not inflate (CPU only; with --threads 1 it equals the wall time of a quiet machine)
CLOCKS = {"wall": time.perf_counter, "process": time.process_time}
aten = torch.ops.aten


def _cpu_sdpa(query, key, value, *args, out_val=None, **kwargs):
    return sdpa_flop_count(query, key, value)


def _cpu_sdpa_backward(grad_out, query, key, value, *args, out_val=None, **kwargs):
    return sdpa_backward_flop_count(grad_out, query, key, value)


# FlopCounterMode has formulas for the CUDA attention kernels only; the CPU's fused kernel gets the same
FLOP_FORMULAS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward,
}


def preset_archs() -> list[str]:
    """The study backbones the presets pre-train (the default of ``--archs``; the paper preset's
    ViT-B/SwinV2-B are left out: name them with ``--archs`` on a GPU)."""
    from mimstudy.study.runner import PRESET_DIR, plan

    archs = {step.config.arch for preset in sorted(PRESET_DIR.glob("*.yaml")) for step in plan(preset)
             if isinstance(step.config, PretrainConfig) and step.config.arch in available_backbones()}
    return sorted(archs)


# finetune is a supervised step on a pre-trained encoder (it needs a checkpoint to start from): the
# supervised rows are its cost
TIMED_OBJECTIVES = tuple(o for o in OBJECTIVES if o != "finetune")


def combinations(objectives: list[str], archs: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """The (objective, arch) pairs that build, and a note for each that does not."""
    pairs, skipped = [], []
    for objective in objectives:
        for arch in archs:
            try:
                build_objective(PretrainConfig.from_dict({"objective": objective, "arch": arch}))
                pairs.append((objective, arch))
            except (ConfigError, ModelConfigError, TypeError, ValueError) as err:
                skipped.append(f"{objective} x {arch}: {err}")
    return pairs, skipped


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype, device: torch.device, max_n: int, budget_s: float = 0.5,
                clock=time.perf_counter) -> float:
    """Best GFLOP/s of ``torch.mm`` on square matrices, growing n while one product stays under ``budget_s``."""
    best, n = 0.0, 256
    while n <= max_n:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        torch.mm(a, b)
        synchronize(device)
        seconds = math.inf
        for _ in range(3):
            start = clock()
            torch.mm(a, b)
            synchronize(device)
            seconds = min(seconds, clock() - start)
        best = max(best, 2 * n**3 / seconds / 1e9)
        if 8 * seconds > budget_s:  # the next size takes about 8 times as long
            break
        n *= 2
    return best


def step_flops(step) -> int:
    """FLOPs of one call of ``step()`` (forward and backward), counted on the fly."""
    with FlopCounterMode(display=False, custom_mapping=FLOP_FORMULAS) as counter:
        step()
    return counter.get_total_flops()


class Bare:
    """A timm backbone in the plainest loop: forward, cross-entropy, backward, AdamW."""

    def __init__(self, arch: str, device: torch.device, bf16: bool):
        torch.manual_seed(0)
        self.model = create_backbone(arch, num_classes=NUM_CLASSES).to(device).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=0.05)
        self.device, self.bf16 = device, bf16

    def loss(self, images, labels):
        with autocast(self.bf16, self.device):
            return F.cross_entropy(self.model(images), labels)

    def run(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        for images, labels in batches:
            loss = self.loss(images, labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()


class Ours:
    """An objective as pre-training builds it, trained by :func:`train_one_epoch`."""

    def __init__(self, objective: str, arch: str, device: torch.device, bf16: bool):
        self.config = PretrainConfig.from_dict({"objective": objective, "arch": arch, "bf16": bf16})
        self.objective = build_objective(self.config).to(device)
        self.optimizer, self.scheduler = build_optimizer(self.objective, self.config.lr, self.config.weight_decay,
                                                         total_steps=100_000, warmup_steps=0,
                                                         min_lr=self.config.min_lr)
        self.device = device

    def run(self, data: TensorDataset, batch_size: int, seed: int) -> None:
        torch.manual_seed(seed)
        batches = ShardedBatches(data, batch_size, seed=seed)
        train_one_epoch(self.objective, batches, self.optimizer, self.scheduler, 0, self.device,
                        self.config.grad_clip, self.config.bf16, progress=False, total_steps=100_000)


def timed(run, device: torch.device, clock=time.perf_counter) -> float:
    synchronize(device)
    start = clock()
    run()
    synchronize(device)
    return clock() - start


def warm_up(run, device: torch.device, count: int, budget_s: float, clock=time.perf_counter) -> float:
    """Up to ``count`` untimed steps (fewer past ``budget_s``); the seconds of the last one."""
    spent, last = 0.0, 0.0
    for _ in range(max(count, 1)):
        last = timed(run, device, clock)
        spent += last
        if spent > budget_s:
            break
    return last


def benchmark_arch(arch: str, objectives: list[str], precision: str, args, device: torch.device, log) -> dict:
    """Images/s of the bare loop and of ours for each objective on ``arch`` at one precision."""
    bf16 = precision == "bf16"
    batch = args.batch_size
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.steps * batch, 1, 32, 32, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (args.steps * batch,), generator=generator)
    bare = Bare(arch, device, bf16)
    ours = {name: Ours(name, arch, device, bf16) for name in objectives}
    ready = [(images[i * batch:(i + 1) * batch].to(device), labels[i * batch:(i + 1) * batch].to(device))
             for i in range(args.steps)]

    # warm up each loop; the slowest one's step time decides how many steps fit in --max-seconds
    warm = TensorDataset(images[:batch], labels[:batch])
    clock = CLOCKS[args.clock]
    step_seconds = warm_up(lambda: bare.run(ready[:1]), device, args.warmup, args.max_seconds / 2, clock)
    for loop in ours.values():
        step_seconds = max(step_seconds, warm_up(lambda: loop.run(warm, batch, seed=0), device, args.warmup,
                                                 args.max_seconds / 2, clock))
    # short runs, many times: a run that another process slowed down is outvoted by the others
    steps = max(1, min(args.steps, int(args.max_seconds / step_seconds)))
    repeats = max(1, min(args.repeats, int(args.max_seconds / (steps * step_seconds))))
    data = TensorDataset(images[:steps * batch], labels[:steps * batch])

    seconds: dict[str, list[float]] = {"bare": [], **{name: [] for name in ours}}
    for rep in range(repeats):
        seconds["bare"].append(timed(lambda: bare.run(ready[:steps]), device, clock))
        for name, loop in ours.items():
            seconds[name].append(timed(lambda: loop.run(data, batch, seed=rep + 1), device, clock))
    rates = {name: steps * batch / min(runs) for name, runs in seconds.items()}
    medians = {name: steps * batch / float(np.median(runs)) for name, runs in seconds.items()}
    log(f"  {arch} {precision}: {repeats} run(s) of {steps} step(s), bare {rates['bare']:.1f} img/s, "
        + ", ".join(f"{name} {rates[name]:.1f}" for name in ours))
    return {"rates": rates, "medians": medians, "steps": steps, "repeats": repeats}


def count_flops(arch: str, objectives: list[str], batch_size: int, device: torch.device) -> dict:
    """FLOPs of one training step (forward + backward, fp32) of the bare loop and of each objective."""
    images = torch.randn(batch_size, 1, 32, 32, device=device)
    labels = torch.randint(0, NUM_CLASSES, (batch_size,), device=device)
    bare = Bare(arch, device, bf16=False)
    flops = {"bare": step_flops(lambda: bare.loss(images, labels).backward())}
    for name in objectives:
        objective = Ours(name, arch, device, bf16=False).objective.train()
        flops[name] = step_flops(lambda: objective(images, labels)[0].backward())
    return {"flops": flops, "params": sum(p.numel() for p in bare.model.parameters())}


def build_dataset(results: dict, objectives: list[str], archs: list[str], precisions: list[str],
                  peaks: dict[str, float]) -> xr.Dataset:
    shape = (len(objectives), len(archs), len(precisions))
    ours, ours_median, ours_flops, steps, runs = (np.full(shape, np.nan) for _ in range(5))
    bare, bare_median, bare_gflops = (np.full(shape[1:], np.nan) for _ in range(3))
    step_gflop = np.full(shape[:2], np.nan)
    bare_step_gflop = np.full(len(archs), np.nan)
    params = np.full(len(archs), np.nan)
    for (arch, precision), r in results.items():
        a, p = archs.index(arch), precisions.index(precision)
        batch_steps = r["rates"]["bare"] / r["batch_size"]
        bare[a, p], bare_median[a, p] = r["rates"]["bare"], r["medians"]["bare"]
        bare_step_gflop[a] = r["flops"]["bare"] / 1e9
        bare_gflops[a, p] = bare_step_gflop[a] * batch_steps
        params[a] = r["params"]
        for name in r["flops"]:
            if name == "bare":
                continue
            o = objectives.index(name)
            ours[o, a, p], ours_median[o, a, p] = r["rates"][name], r["medians"][name]
            step_gflop[o, a] = r["flops"][name] / 1e9
            ours_flops[o, a, p] = step_gflop[o, a] * r["rates"][name] / r["batch_size"]
            steps[o, a, p], runs[o, a, p] = r["steps"], r["repeats"]
    dims3, dims2 = ("objective", "arch", "precision"), ("arch", "precision")
    ds = xr.Dataset(
        {
            "ours_images_per_s": (dims3, ours),
            "bare_images_per_s": (dims2, bare),
            "ratio": (dims3, ours / bare[None]),
            "ours_images_per_s_median": (dims3, ours_median),
            "bare_images_per_s_median": (dims2, bare_median),
            "ratio_median": (dims3, ours_median / bare_median[None]),
            "ours_gflop_per_s": (dims3, ours_flops),
            "bare_gflop_per_s": (dims2, bare_gflops),
            "gflop_per_step": (("objective", "arch"), step_gflop),
            "bare_gflop_per_step": ("arch", bare_step_gflop),
            "matmul_gflop_per_s": ("precision", np.array([peaks.get(p, np.nan) for p in precisions])),
            "peak_gflop_per_s": ((), peaks["fp32"]),
            "timed_steps": (dims3, steps),
            "timed_runs": (dims3, runs),
            "params": ("arch", params),
        },
        coords={"objective": objectives, "arch": archs, "precision": precisions},
    )
    ds["ratio"].attrs["description"] = "ours / bare images/s, best runs (the same work for the supervised objective)"
    ds["ratio_median"].attrs["description"] = "ours / bare images/s, median runs (spread against ratio: noise)"
    ds["peak_gflop_per_s"].attrs["description"] = "best fp32 torch.mm of square matrices on this machine"
    ds["matmul_gflop_per_s"].attrs["description"] = "best torch.mm of square matrices in each precision"
    ds["gflop_per_step"].attrs["description"] = "forward + backward of one global batch (FlopCounterMode)"
    return ds


def table(ds: xr.Dataset, batch_size: int) -> str:
    lines = [f"batch {batch_size}, {ds.attrs['threads']} thread(s), {ds.attrs['clock']} clock; matmul peak (fp32 torch.mm) {ds.peak_gflop_per_s.item():.1f} GFLOP/s; torch.mm "
             + ", ".join(f"{p} {ds.matmul_gflop_per_s.sel(precision=p).item():.1f}" for p in ds.precision.values),
        f"{'objective':<11} {'arch':<14} {'prec':<5} {'ours img/s':>10} {'bare img/s':>10} {'ratio':>6} {'median':>6} "
        f"{'GFLOP/step':>10} {'ours GFLOP/s':>12} {'bare GFLOP/s':>12} {'% peak':>7} {'runs':>9}"]
    for o in ds.objective.values:
        for a in ds.arch.values:
            for p in ds.precision.values:
                cell = ds.sel(objective=o, arch=a, precision=p)
                if np.isnan(cell.ours_images_per_s):
                    continue
                lines.append(
                    f"{o:<11} {a:<14} {p:<5} {cell.ours_images_per_s.item():>10.1f} {cell.bare_images_per_s.item():>10.1f} "
                    f"{cell.ratio.item():>6.3f} {cell.ratio_median.item():>6.3f} {cell.gflop_per_step.item():>10.2f} {cell.ours_gflop_per_s.item():>12.1f} "
                    f"{cell.bare_gflop_per_s.item():>12.1f} "
                    f"{100 * cell.ours_gflop_per_s.item() / cell.peak_gflop_per_s.item():>6.1f}% {int(cell.timed_runs):>3} x {int(cell.timed_steps):<3}")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objectives", default="all", help=f"comma-separated, or all: {', '.join(TIMED_OBJECTIVES)}")
    parser.add_argument("--archs", default="presets",
                        help="comma-separated, 'presets' (the presets' backbones) or 'all' " f"({', '.join(available_backbones())})")
    parser.add_argument("--precisions", default="fp32,bf16", help="fp32 and/or bf16 (autocast)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per run (at most; more on a GPU)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (fewer past --max-seconds / 2)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs (at most), alternating bare and ours; best counts")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    parser.add_argument("--max-seconds", type=float, default=6.0, help="time budget of the timed runs of one loop")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or this process's CPU time (a shared CPU machine: with --threads 1)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="results/benchmarks/train_throughput.nc")
    return parser.parse_args(argv)


def main(argv=None, log=print) -> xr.Dataset:
    args = parse_args(argv)
    objectives = list(TIMED_OBJECTIVES) if args.objectives == "all" else args.objectives.split(",")
    archs = {"presets": preset_archs, "all": available_backbones}.get(args.archs, lambda: args.archs.split(","))()
    precisions = args.precisions.split(",")
    unknown = sorted(set(precisions) - set(PRECISIONS))
    if unknown:
        raise SystemExit(f"unknown precision(s) {unknown}; use fp32 and/or bf16")
    device = distributed.resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "process" and device.type != "cpu":
        raise SystemExit("--clock process measures CPU time; use the wall clock on a GPU")
    pairs, skipped = combinations(objectives, archs)
    for note in skipped:
        log(f"skip {note}")
    max_n = 8192 if device.type == "cuda" else 4096
    peaks = {p: matmul_peak(PRECISIONS[p], device, max_n, clock=CLOCKS[args.clock])
             for p in dict.fromkeys(["fp32", *precisions])}
    log(f"{device} ({cpu_name() if device.type == 'cpu' else torch.cuda.get_device_name(device)}), "
        f"{torch.get_num_threads()} threads; matmul peak "
        + ", ".join(f"{p} {v:.1f} GFLOP/s" for p, v in peaks.items()))
    results = {}
    for arch in archs:
        names = [o for o, a in pairs if a == arch]
        if not names:
            continue
        cost = count_flops(arch, names, args.batch_size, device)
        for precision in precisions:
            results[arch, precision] = {**benchmark_arch(arch, names, precision, args, device, log), **cost,
                                        "batch_size": args.batch_size}
    ds = build_dataset(results, objectives, archs, precisions, peaks)
    ds.attrs.update(device=str(device), device_name=torch.cuda.get_device_name(device) if device.type == "cuda"
                    else cpu_name(), threads=torch.get_num_threads(),
                    batch_size=args.batch_size, clock=args.clock, skipped="; ".join(skipped))
    path = save_dataset(ds, args.out, parameters=vars(args), preset="benchmark", seed=0)
    log(table(ds, args.batch_size))
    log(f"saved: {path}")
    return ds


if __name__ == "__main__":
    main(sys.argv[1:])
