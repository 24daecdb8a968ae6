"""The Compute page (``book/compute.md``): the stored training and probing benchmarks as tables."""

from __future__ import annotations

import json

import numpy as np
from IPython.display import Markdown, display

from mimstudy.book.stored import results_root
from mimstudy.results import load_dataset


def hardware(ds) -> str:
    """The machine a benchmark ran on, from whatever its attrs record."""
    if ds.attrs.get("hardware"):
        return str(ds.attrs["hardware"])
    name = ds.attrs.get("device_name") or ds.attrs.get("device") or "an unrecorded device"
    threads = ds.attrs.get("threads")
    return f"{name}" + (f", {threads} thread{'' if str(threads) == '1' else 's'}" if threads else "")


def stored_benchmark(name: str, how: str):
    """``(path, dataset)`` of ``results/benchmarks/<name>.nc``, or ``(path, None)`` after saying what to
    run (``how``) when it is not stored."""
    path = results_root() / "benchmarks" / f"{name}.nc"
    if not path.is_file():
        display(Markdown(f"No benchmark stored at `{path.relative_to(results_root().parent)}`: run `{how}`."))
        return path, None
    return path, load_dataset(path)


def throughput(name: str) -> None:
    """The table of one stored training benchmark (``results/benchmarks/<name>.nc``)."""
    path, ds = stored_benchmark(name, "make benchmark")
    if ds is None:
        return
    rows = ["| objective | backbone | precision | ours (img/s) | bare timm (img/s) | ratio | GFLOP/step | GFLOP/s | % of best matmul rate |",
            "|---|---|---|---|---|---|---|---|---|"]
    for o in ds.objective.values:
        for a in ds.arch.values:
            for p in ds.precision.values:
                c = ds.sel(objective=o, arch=a, precision=p)
                if np.isnan(c.ours_images_per_s):
                    continue
                rows.append(f"| {o} | {a} | {p} | {c.ours_images_per_s.item():.0f} | {c.bare_images_per_s.item():.0f} | "
                            f"{c.ratio.item():.2f} | {c.gflop_per_step.item():.2f} | {c.ours_gflop_per_s.item():.1f} | "
                            f"{100 * c.ours_gflop_per_s.item() / ds.matmul_gflop_per_s.max().item():.1f}% |")
    peak = ", ".join(f"{p}: {ds.matmul_gflop_per_s.sel(precision=p).item():.1f} GFLOP/s" for p in ds.precision.values)
    params = json.loads(ds.attrs.get("parameters", "{}"))
    note = f"\n\n*{ds.attrs['provenance_note']}.*" if ds.attrs.get("provenance_note") else ""
    display(Markdown(f"**Training throughput on {hardware(ds)}** (`{path.name}`). Measured `torch.mm` peak — {peak}. "
                     f"Batch {params.get('batch_size', ds.attrs.get('batch_size', '?'))}, "
                     f"{ds.attrs.get('clock', '?')} clock, made {ds.attrs.get('created', '?')} on "
                     f"{ds.attrs.get('machine', '?')} at commit `{str(ds.attrs.get('git_commit', '?'))[:10]}`."
                     + note + "\n\n" + "\n".join(rows)))



def probe_throughput() -> None:
    """The stored probing benchmark (``results/benchmarks/probe_throughput.nc``), when there is one."""
    path = results_root() / "benchmarks" / "probe_throughput.nc"
    if path.is_file():
        probe = load_dataset(path)
        speed = " | ".join(f"{m}: {probe.images_per_s.sel(mode=m).item():.2f} img/s" for m in probe["mode"].values)
        memory = "\n".join(f"| {n} | {probe.rss_before_mib.sel(num_images=n).item():.0f} | {probe.peak_rss_mib.sel(num_images=n).item():.0f} |"
                           for n in probe["num_images"].values)
        display(Markdown(
            f"**Probing** (`benchmarks/probe_throughput.py`): all probes of `probe_model` on {probe.attrs.get('model')} at "
            f"{probe.attrs.get('img_size')} px, batch {probe.attrs.get('batch_size')}, {probe.attrs.get('threads')} threads — {speed}; "
            f"probe / bare forward = {probe.probe_to_forward.item():.2f} (probe / unfused forward "
            f"{probe.probe_to_unfused_forward.item():.2f}). Made {probe.attrs.get('created')} at commit "
            f"`{str(probe.attrs.get('git_commit'))[:10]}` on {probe.attrs.get('cpu_count', '?')} CPU cores.\n\n"
            f"Peak memory of a fresh process probing {probe.attrs.get('memory_model')} (MiB): it does not grow with the number of images.\n\n"
            "| images | RSS before | peak while probing |\n|---|---|---|\n" + memory))


def downstream_throughput() -> None:
    """The stored downstream benchmark (``results/benchmarks/downstream_throughput.nc``), when there is one."""
    path, ds = stored_benchmark("downstream_throughput", "python benchmarks/downstream_throughput.py")
    if ds is None:
        return
    rows = ["| task | backbone | ours (img/s) | bare step (img/s) | ratio | data: draw + write, read (ms/item, once) |",
            "|---|---|---|---|---|---|"]
    for t in ds.task.values:
        for a in ds.arch.values:
            c = ds.sel(task=t, arch=a)
            rows.append(f"| {t} | {a} | {c.ours_images_per_s.item():.1f} | {c.bare_images_per_s.item():.1f} | "
                        f"{c.ratio.item():.2f} | {c.draw_ms_per_item.item():.1f}, {c.read_ms_per_item.item():.2f} |")
    params = json.loads(ds.attrs.get("parameters", "{}"))
    display(Markdown(f"**Downstream fine-tuning throughput on {hardware(ds)}** (`{path.name}`, best of "
                     f"{params.get('repeats', '?')} alternating runs of {params.get('steps', '?')} steps at batch "
                     f"{params.get('batch_size', '?')}; made {ds.attrs.get('created', '?')} at commit "
                     f"`{str(ds.attrs.get('git_commit', '?'))[:10]}`). *Ours*: the task's objective through the "
                     "shared fine-tuning loop; *bare*: the same network in a plain loop on a ready batch (detection: "
                     "torchvision's Mask R-CNN on ready target dicts).\n\n" + "\n".join(rows)))


def campaign_ledger(preset: str = "cpu") -> None:
    """The preset's pieces (:mod:`mimstudy.study.ledger`): measured or estimated wall time, and whether
    each is committed and current."""
    from mimstudy.study.ledger import ledger, ledger_markdown, preset_pieces

    if not preset_pieces(preset):
        return
    rows = ledger(preset, str(results_root()))
    display(Markdown(f"**The `{preset}` campaign's ledger** (`mimstudy ledger --preset {preset}`; wall times logged "
                     f"in `results/{preset}/run_log.csv` by the run that made each piece).\n\n"
                     + ledger_markdown(rows, preset)))


MACHINE_FIELDS = ("cpu_model", "torch_cpu_capability", "numerics", "hardware")


def machines_by_seed(preset: str = "cpu") -> None:
    """Which machine made which stored results of ``preset``, by seed: the processor, the CPU code path
    torch dispatched to and whether the numerics were pinned (:mod:`mimstudy.numerics`)."""
    from collections import Counter

    from mimstudy.results import stored_attrs

    folder = results_root() / preset
    made: dict[tuple, Counter] = {}
    for path in sorted(folder.glob("*/*.nc")):
        attrs = stored_attrs(path) or {}
        key = (int(attrs.get("seed", 0)),) + tuple(str(attrs.get(f, "not recorded")) for f in MACHINE_FIELDS)
        made.setdefault(key, Counter())[path.parent.name] += 1
    if not made:
        return
    rows = ["| seed | processor | torch CPU capability | numerics | hardware | results |", "|---|---|---|---|---|---|"]
    rows += [f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {k[4]} | "
             + ", ".join(f"{n} {c}" for n, c in sorted(v.items())) + " |" for k, v in sorted(made.items())]
    display(Markdown(
        f"**Which machine made which `{preset}` result.** On the CPU a result is bitwise reproducible on "
        "another machine only with the same numeric code paths: the runner pins ATen, oneDNN and MKL to a "
        "common x86-64 AVX2 baseline (`mimstudy.numerics`; `numerics` below says whether a result was made "
        "so), with the same package versions and one torch thread per job (`--jobs 2` on 2 cores). "
        f"`mimstudy verify --preset {preset} --runs <run id>` re-makes a stored run in a scratch folder and "
        "reports, per variable, bitwise equal or the largest difference. Results made unpinned on different "
        "processors differ as much as different training seeds do.\n\n" + "\n".join(rows)))


def numeric_baseline() -> None:
    """The stored cost of pinning the numeric code paths and of ``torch.compile``
    (``results/benchmarks/numeric_baseline*.nc``, ``benchmarks/numeric_baseline.py``)."""
    for name in ("numeric_baseline", "numeric_baseline_compile"):
        path, ds = stored_benchmark(name, "python benchmarks/numeric_baseline.py")
        if ds is None:
            continue
        modes = list(ds["mode"].values)
        rows = ["| objective | " + " | ".join(f"{m}: s/step" for m in modes) + " | same weights twice | digest differs from the first mode |",
                "|---|" + "---|" * len(modes) + "---|---|"]
        for o in ds["objective"].values:
            c = ds.sel(objective=o)
            times = " | ".join(f"{float(c.seconds_per_step.sel(mode=m).min()):.3f}" for m in modes)
            same = all(len(set(c.weights_digest.sel(mode=m).values)) == 1 for m in modes)
            first = str(c.weights_digest.sel(mode=modes[0]).values[0])
            differs = ", ".join(m for m in modes[1:] if str(c.weights_digest.sel(mode=m).values[0]) != first) or "none"
            rows.append(f"| {o} | {times} | {'yes' if same else 'NO'} | {differs} |")
        display(Markdown(
            f"**Numeric code paths** (`{path.name}`): {ds.attrs.get('arch')} at batch {ds.attrs.get('batch_size')}, one "
            f"torch thread, best of two fresh processes per cell (median step of each) on {ds.attrs.get('cpu_model', '?')} "
            f"({ds.attrs.get('matmul_gflops_1thread', float('nan')):.0f} GFLOP/s fp32 matmul per thread), made "
            f"{ds.attrs.get('created', '?')}. `native`: the processor's own code paths; `pinned`: the study's AVX2 "
            "baseline; `pinned_compile`: the objective under `torch.compile` too.\n\n" + "\n".join(rows)))
