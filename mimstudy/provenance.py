"""Where a result came from: parameters, code version, package versions, time and machine."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path

PACKAGES = ("mimstudy", "torch", "torchvision", "timm", "numpy", "scipy", "xarray", "papermill")


GIT_COMMIT_VARIABLE = "MIMSTUDY_GIT_COMMIT"
RESULTS_FOLDER = "results"  # the repository's results tree (committed datasets): not code


def git_commit(cwd: str | Path | None = None) -> tuple[str, bool]:
    """``(commit, dirty)`` of the repository holding this package, or ``("unknown", False)``.

    ``dirty``: tracked files other than those under ``results/`` differ from the commit.

    ``$MIMSTUDY_GIT_COMMIT``, when set, wins: a copy of a clean checkout sent elsewhere (a GPU
    machine, say) may have no ``.git``, or an unrelated one, so whoever sent it names the commit.
    """
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    exported = os.environ.get(GIT_COMMIT_VARIABLE, "").strip()
    if exported:
        return exported, False
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        # committed results are outputs: a run re-making them (its own files changing) is no edit of the code
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/",
                                 f":(top,exclude){RESULTS_FOLDER}"], cwd=cwd, capture_output=True, text=True,
                                check=True, timeout=10).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def hardware() -> str:
    """The processor the run could use: the CUDA device when one is visible, and the CPU count."""
    cpus = f"{os.cpu_count()} CPUs"
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name()} (CUDA), {cpus}"
    except (ImportError, RuntimeError):
        pass
    return f"CPU only ({platform.processor() or platform.machine()}), {cpus}"


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance_attrs(parameters: dict, preset: str, seed: int) -> dict[str, str | int]:
    """netCDF-safe attributes (strings and ints only) describing a run."""
    commit, dirty = git_commit()
    return {
        "parameters": json.dumps(parameters, sort_keys=True),
        "preset": preset,
        "seed": int(seed),
        "git_commit": commit,
        "git_dirty": int(dirty),
        "package_versions": json.dumps(package_versions(), sort_keys=True),
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}",
        "hardware": hardware(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
