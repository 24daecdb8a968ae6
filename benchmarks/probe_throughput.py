"""Throughput and memory of ``probe_model`` on ViT-B/16 at 224 px, on the CPU.

Throughput: images/s of ``probe_model`` (all four probes) next to a bare forward pass
(``forward_features``, timm's default fused attention) of the same randomly initialised model on
the same images, in the same process, alternating rounds and keeping each one's fastest round (the
machine may be shared). ``forward_unfused`` is the bare pass with timm's explicit-softmax attention,
which the probes need to see the maps: the floor of what probing can cost.

Memory: peak RSS (the kernel's ``VmHWM``, reset after set-up; else ``ru_maxrss``) of a fresh
subprocess per image count that builds the model (ViT-Ti/16 at 224 px by default, to keep the run
short: same token count as ViT-B) and streams ``num_images`` through ``probe_model`` in batches generated
on the fly (so no image tensor grows with the count): peak memory must not grow with the number of
images beyond the per-image scalars (3 x layers x heads float32 per image).

    PYTHONPATH=. python benchmarks/probe_throughput.py            # ~5 min on 2 cores
    PYTHONPATH=. python benchmarks/probe_throughput.py --memory-model vit_base_patch16_224  # ~10 min more

Writes ``results/benchmarks/probe_throughput.nc`` (with provenance) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from mimstudy.data.imagenet import sample_photos
from mimstudy.models.backbones import create_backbone
from mimstudy.probes import probe_model
from mimstudy.probes.extract import unfused_attention
from mimstudy.results import save_dataset

MODES = ("forward", "forward_unfused", "probe_model")


def build(model_name: str, img_size: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_backbone(model_name, num_classes=0, img_size=img_size).eval()


def batches(photos: torch.Tensor, num_images: int, batch_size: int):
    """``num_images`` images in batches, each made on the fly from the same few photos (shifted)."""
    for start in range(0, num_images, batch_size):
        yield photos.roll(start % photos.shape[-1], dims=-1)[: min(batch_size, num_images - start)]


@torch.no_grad()
def forward_all(model, images: torch.Tensor, batch_size: int) -> None:
    for start in range(0, images.shape[0], batch_size):
        model.forward_features(images[start : start + batch_size])


def time_modes(model, images: torch.Tensor, batch_size: int, rounds: int) -> np.ndarray:
    """Seconds ``[mode, round]`` for the whole image set; modes alternate within each round."""
    runs = {
        "forward": lambda: forward_all(model, images, batch_size),
        "forward_unfused": lambda: _unfused(model, images, batch_size),
        "probe_model": lambda: probe_model(model, images, batch_size),
    }
    probe_model(model, images[:batch_size], batch_size)  # warm-up (allocator, lazy inits)
    forward_all(model, images[:batch_size], batch_size)
    seconds = np.zeros((len(MODES), rounds))
    for r in range(rounds):
        for m, mode in enumerate(MODES):
            start = time.perf_counter()
            runs[mode]()
            seconds[m, r] = time.perf_counter() - start
            print(f"  round {r + 1}/{rounds} {mode:16s} {seconds[m, r]:7.1f} s", flush=True)
    return seconds


def _unfused(model, images, batch_size):
    with unfused_attention(model):
        forward_all(model, images, batch_size)


def _status_mib(field: str) -> float | None:
    """``VmRSS`` / ``VmHWM`` (peak RSS) of this process from ``/proc/self/status``, in MiB (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (``VmHWM``) to the current RSS: Linux >= 4.0 ``clear_refs`` 5."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def memory_worker(args) -> None:
    """In a fresh process: peak RSS while streaming ``num_images`` through probe_model.

    Imports, building the model and reading the photos (full-size skimage/sklearn images) peak
    higher than probing a small model does, so the peak-RSS mark is reset after that set-up
    (``/proc/self/clear_refs``); without that (non-Linux) the process-lifetime ``ru_maxrss`` is used.
    """
    torch.set_num_threads(args.threads)
    model = build(args.memory_model, args.img_size)
    photos = sample_photos(args.img_size, args.batch_size)
    setup_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux reports KiB)
    reset = _reset_peak_rss()
    before = _status_mib("VmRSS")
    start = time.perf_counter()
    ds = probe_model(model, batches(photos, args.memory_worker, args.batch_size), args.batch_size)
    seconds = time.perf_counter() - start
    peak = _status_mib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert ds.sizes["image"] == args.memory_worker
    print(json.dumps({"rss_before_mib": before or float("nan"), "peak_rss_mib": peak, "setup_peak_rss_mib": setup_peak,
                      "peak_reset": int(reset), "seconds": seconds}))


def measure_memory(args, num_images: int) -> dict:
    cmd = [sys.executable, __file__, "--memory-worker", str(num_images), "--memory-model", args.memory_model,
           "--batch-size", str(args.batch_size), "--img-size", str(args.img_size), "--threads", str(args.threads)]
    run = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vit_base_patch16_224")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=2, help="batches per timed round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memory-images", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--memory-model", default="vit_tiny_patch16_224",
                        help="model of the memory runs: ViT-Ti/16 has ViT-B's 197 tokens (its attention maps per "
                             "head are as large) at ~1/13 of the FLOPs; ViT-B at 512 images takes ~10 min on 2 cores")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", default="results/benchmarks/probe_throughput.nc")
    parser.add_argument("--memory-worker", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker:
        memory_worker(args)
        return 0

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    num = args.batch_size * args.batches
    print(f"throughput: {args.model} at {args.img_size} px, {num} images in batches of {args.batch_size}, "
          f"{args.threads} threads, load average {load_before:.1f} on {os.cpu_count()} cores", flush=True)
    model = build(args.model, args.img_size)
    images = sample_photos(args.img_size, num)
    seconds = time_modes(model, images, args.batch_size, args.rounds)
    rate = num / seconds.min(axis=1)  # images/s, best round

    print(f"memory: {args.memory_model}, all probes, batch {args.batch_size}, fresh process per count", flush=True)
    memory = [measure_memory(args, n) for n in args.memory_images]
    for n, mem in zip(args.memory_images, memory):
        print(f"  {n:4d} images: peak RSS {mem['peak_rss_mib']:.0f} MiB ({mem['seconds']:.0f} s)", flush=True)
    load_after = os.getloadavg()[0]

    ds = xr.Dataset(
        {
            "seconds": (("mode", "round"), seconds, {"long_name": f"wall time for {num} images", "units": "s"}),
            "images_per_s": ("mode", rate, {"long_name": "throughput, fastest round", "units": "images/s"}),
            "probe_to_forward": ((), rate[2] / rate[0], {"long_name": "probe_model images/s / bare forward images/s"}),
            "probe_to_unfused_forward": ((), rate[2] / rate[1]),
            "peak_rss_mib": ("num_images", [m["peak_rss_mib"] for m in memory],
                             {"long_name": "peak RSS while probing (VmHWM reset after set-up)", "units": "MiB"}),
            "rss_before_mib": ("num_images", [m["rss_before_mib"] for m in memory],
                               {"long_name": "RSS after building the model and photos, before probing", "units": "MiB"}),
            "setup_peak_rss_mib": ("num_images", [m["setup_peak_rss_mib"] for m in memory],
                                   {"long_name": "peak RSS of imports, model and photos", "units": "MiB"}),
            "memory_seconds": ("num_images", [m["seconds"] for m in memory], {"units": "s"}),
        },
        coords={"mode": list(MODES), "round": np.arange(args.rounds), "num_images": args.memory_images},
        attrs={"model": args.model, "memory_model": args.memory_model, "img_size": args.img_size,
               "batch_size": args.batch_size, "threads": args.threads, "cpu_count": os.cpu_count(),
               "load_average_before": load_before, "load_average_after": load_after,
               "images": "mimstudy.data.imagenet.sample_photos (natural photos, ImageNet-normalised)",
               "weights": "random init (seed 0): speed and memory do not depend on the weights"},
    )
    path = save_dataset(ds, args.out, {k: v for k, v in vars(args).items() if k != "memory_worker"},
                        preset="benchmark", seed=0)

    print(f"\n{'mode':18s} {'images/s':>9s}   ({args.model}, {args.img_size} px, batch {args.batch_size}, "
          f"{args.threads} threads)")
    for mode, r in zip(MODES, rate):
        print(f"{mode:18s} {r:9.2f}")
    print(f"probe_model / forward          {rate[2] / rate[0]:.2f}  (target >= 0.7)")
    print(f"probe_model / unfused forward  {rate[2] / rate[1]:.2f}")
    print(f"\n{'images':>6s} {'RSS before':>11s} {'peak probing':>13s} {'growth':>7s}  MiB   ({args.memory_model}, "
          f"{args.img_size} px, batch {args.batch_size}, all probes)")
    for n, mem in zip(args.memory_images, memory):
        growth = mem["peak_rss_mib"] - mem["rss_before_mib"]
        print(f"{n:6d} {mem['rss_before_mib']:11.0f} {mem['peak_rss_mib']:13.0f} {growth:7.0f}")
    print(f"\nload average {load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} cores; saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
