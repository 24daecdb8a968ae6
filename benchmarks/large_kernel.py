"""CPU speed of RepLKNet's large depth-wise convolutions against the same FLOPs in 1x1 convolutions.

    OMP_NUM_THREADS=1 python benchmarks/large_kernel.py               # ~2 minutes on one core
    python benchmarks/large_kernel.py --arch replk_tiny_32 --batch-size 128 --threads 2

For each stage of ``--arch`` (default replk_mini_32: maps 16, 8, 4 px; kernels 17, 15, 7), one
forward + backward of the stage's depth-wise ``k x k`` convolution on a ``[B, C, map, map]`` batch is
timed with every implementation torch offers on the CPU:

* ``direct``: ``F.conv2d(groups=C)`` on NCHW (oneDNN's depth-wise kernel);
* ``channels_last``: the same on a channels-last tensor;
* ``fft``: :func:`mimstudy.models.replknet.fft_depthwise_conv2d` (zero-padded ``rfft2``, product, ``irfft2``);

next to a 1x1 convolution ``C -> k^2`` on the same map (the same multiply-adds, ``C k^2`` per pixel).
``slowdown = time / time(1x1)``: how much worse than a dense 1x1 layer of equal FLOPs each
implementation does. Then one training step of the whole model (``auto``: what RepLKNet uses,
FFT on big maps and channels-last elsewhere; ``direct``: everything direct) and of the ViT
namesake, and the share of the step the large kernels take: the sum over layers of their isolated
forward + backward time with the implementation the model uses, over the step's time (an estimate).

Every timing is the best of ``--repeats`` (other processes only slow a run down); on a shared,
loaded machine they are not quiet-machine numbers, but the ratios between implementations timed
back to back are what the choice rests on.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from mimstudy.models.backbones import create_backbone
from mimstudy.models.replknet import LargeDepthwiseConv2d, fft_depthwise_conv2d


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def stage_rows(model, batch: int, repeats: int) -> list[dict]:
    rows = {}
    for _, module, stride in model.large_kernels():
        k, side = module.kernel_size, 32 // stride
        channels = module.lkb_origin.conv.in_channels
        if (k, side, channels) in rows:
            rows[(k, side, channels)]["layers"] += 1
            continue
        x = torch.randn(batch, channels, side, side, requires_grad=True)
        xc = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
        w = torch.randn(channels, 1, k, k, requires_grad=True)
        w1 = torch.randn(k * k, channels, 1, 1, requires_grad=True)
        impls = {
            "direct": lambda: F.conv2d(x, w, padding=k // 2, groups=channels).sum().backward(),
            "channels_last": lambda: F.conv2d(xc, w, padding=k // 2, groups=channels).sum().backward(),
            "fft": lambda: fft_depthwise_conv2d(x, w).sum().backward(),
            "1x1 same FLOPs": lambda: F.conv2d(x, w1).sum().backward(),
        }
        times = {name: best_time(fn, repeats) for name, fn in impls.items()}
        error = (fft_depthwise_conv2d(x, w) - F.conv2d(x, w, padding=k // 2, groups=channels)).abs().max().item()
        used = "fft" if module.lkb_origin.conv.use_fft(x) else "channels_last"  # the model's inputs are channels-last
        rows[(k, side, channels)] = dict(kernel=k, map=side, channels=channels, layers=1, used=used,
                                         fft_max_abs_error=error, **times)
    return list(rows.values())


def step_time(model, batch: int, repeats: int) -> float:
    x, y = torch.randn(batch, 1, 32, 32), torch.randint(0, 10, (batch,))
    opt = torch.optim.AdamW(model.parameters())

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return best_time(step, repeats)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="replk_mini_32")
    parser.add_argument("--vit", default="vit_mini_32")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_backbone(args.arch)
    print(f"{args.arch}, batch {args.batch_size}, {args.threads} thread(s); forward + backward, best of {args.repeats}")
    print("| kernel | map | channels | layers | direct ms | channels-last ms | FFT ms | 1x1 same FLOPs ms | "
          "slowdown direct / CL / FFT | used | FFT max error |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = stage_rows(model, args.batch_size, args.repeats)
    for r in rows:
        base = r["1x1 same FLOPs"]
        print(f"| {r['kernel']} | {r['map']} | {r['channels']} | {r['layers']} | {1e3 * r['direct']:.1f} | "
              f"{1e3 * r['channels_last']:.1f} | {1e3 * r['fft']:.1f} | {1e3 * base:.1f} | {r['direct'] / base:.1f} / "
              f"{r['channels_last'] / base:.1f} / {r['fft'] / base:.1f} | {r['used']} | {r['fft_max_abs_error']:.1e} |")
    auto = step_time(model, args.batch_size, args.repeats)
    for m in model.modules():
        if isinstance(m, LargeDepthwiseConv2d):
            m.impl = "direct"
    direct = step_time(model, args.batch_size, args.repeats)
    for m in model.modules():
        if isinstance(m, LargeDepthwiseConv2d):
            m.impl = "auto"
    vit = step_time(create_backbone(args.vit), args.batch_size, args.repeats)
    share = sum(r["layers"] * r[r["used"]] for r in rows) / auto
    print(f"\ntraining step ({args.batch_size} images): {args.arch} as used (FFT on big maps, channels-last) "
          f"{args.batch_size / auto:.1f} img/s, all direct {args.batch_size / direct:.1f} img/s; "
          f"{args.vit} {args.batch_size / vit:.1f} img/s (equal FLOPs)")
    print(f"large depth-wise kernels: ~{100 * share:.0f}% of the step's time as used (isolated timings summed)")


if __name__ == "__main__":
    main()
