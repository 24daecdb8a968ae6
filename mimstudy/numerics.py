"""The CPU's numeric code paths, pinned to a common x86-64 baseline, and the facts a result records.

On the CPU, two runs of one step on one machine are bitwise identical, but a change of machine acts
like a new training seed: ATen's kernels, oneDNN's primitives and MKL's BLAS each pick the widest
vector instructions the processor has (AVX-512 on one Xeon, AVX2 on an AMD EPYC) and round their
sums differently. Measured on ``cpu``'s ``vit_sup-s0`` re-made on an AVX2 EPYC: train loss differs
in epoch 1 (2.0592 vs 2.0444), val top-1 at epoch 10 72.42 vs 72.76 %.

:data:`PINNED` names one baseline that every x86-64 machine of the last decade has (AVX2 + FMA):

* ``ATEN_CPU_CAPABILITY=avx2``: ATen's vectorised kernels (``torch.backends.cpu.get_cpu_capability``);
* ``ONEDNN_MAX_CPU_ISA=AVX2``: oneDNN's convolutions and matmuls;
* ``MKL_CBWR=AVX2``: MKL's conditional numerical reproducibility, the AVX2 code branch (``COMPATIBLE``,
  the SSE2 branch, halves the speed; see ``benchmarks/numeric_baseline.py``).

The runner starts every notebook with these set (:func:`pinned_environment`; a variable the user set
keeps the user's value, and ``MIMSTUDY_NUMERICS=native`` turns the pins off), and every result
records what its process ran with (:func:`cpu_facts`). They are read when torch loads, so they act
on new processes only: the notebook kernels the runner starts, not the runner itself.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
SWITCH = "MIMSTUDY_NUMERICS"  # "native": run with the processor's own code paths (results then differ by machine)
BASELINE = "x86-64 AVX2"


def pinning_enabled(environ: dict | None = None) -> bool:
    """Pins apply on x86-64 unless ``$MIMSTUDY_NUMERICS`` is ``native``."""
    environ = os.environ if environ is None else environ
    value = environ.get(SWITCH, "pinned").strip().lower()
    if value not in ("pinned", "native"):
        raise ValueError(f"{SWITCH}={value!r}: use 'pinned' (the study's common baseline, default) or 'native'")
    return value == "pinned" and platform.machine().lower() in ("x86_64", "amd64")


def pinned_environment(environ: dict | None = None) -> dict[str, str]:
    """The variables to add to ``environ`` (default ``os.environ``) for a pinned process: each of
    :data:`PINNED` that is not set already (a user's own choice wins, and is recorded)."""
    environ = os.environ if environ is None else environ
    if not pinning_enabled(environ):
        return {}
    return {name: value for name, value in PINNED.items() if name not in environ}


def pin(environ: dict | None = None) -> dict[str, str]:
    """Set :func:`pinned_environment` in ``environ`` (default ``os.environ``, for the processes started
    after this call); returns what was added."""
    environ = os.environ if environ is None else environ
    added = pinned_environment(environ)
    environ.update(added)
    return added


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_facts() -> dict[str, str]:
    """What decides this process's CPU arithmetic: the processor, torch's CPU capability (what ATen
    dispatches to), its thread count and the pinning variables as this process sees them (empty: not set)."""
    facts = {"cpu_model": cpu_model(), "numerics": BASELINE if all(os.environ.get(k) == v for k, v in PINNED.items())
             else "native" if not any(k in os.environ for k in PINNED) else "mixed"}
    try:
        import torch

        facts["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        facts["torch_threads"] = str(torch.get_num_threads())  # sums split over threads round differently
    except (ImportError, AttributeError):
        facts["torch_cpu_capability"], facts["torch_threads"] = "unknown", "unknown"
    facts.update({name.lower(): os.environ.get(name, "") for name in PINNED})
    return facts


def matmul_gflops(threads: int = 1, n: int = 1024, repeats: int = 5) -> float:
    """Best fp32 GFLOP/s of an ``n x n`` ``torch.mm`` on ``threads`` threads: the machine's rate that
    commits quote beside wall times (machines differ 2.5x per core)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    finally:
        torch.set_num_threads(previous)
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
