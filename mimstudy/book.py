"""Helpers for the book's pages: find stored results, pick models, describe provenance.

Pages read ``<results>/<preset>/<notebook>/*.nc``; the preset defaults to ``quick`` and both can be
changed with ``MIMSTUDY_BOOK_PRESET`` and ``MIMSTUDY_RESULTS_DIR`` (e.g. to render the ``cpu`` run).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import xarray as xr

from .results import load_runs

REPO_ROOT = Path(__file__).resolve().parents[1]
OBJECTIVE_ORDER = ("supervised", "moco", "simmim", "simmim_ft")


def book_preset() -> str:
    return os.environ.get("MIMSTUDY_BOOK_PRESET", "quick")


def results_root() -> Path:
    return Path(os.environ.get("MIMSTUDY_RESULTS_DIR", REPO_ROOT / "results"))


def load_results(notebook: str, preset: str | None = None) -> xr.Dataset:
    """All runs of ``notebook`` for the book's preset, models ordered as in the paper's panels."""
    ds = load_runs(results_root() / (preset or book_preset()) / notebook)

    def panel_order(model) -> tuple:
        objective = str(ds["objective"].sel(model=model).item())
        rank = OBJECTIVE_ORDER.index(objective) if objective in OBJECTIVE_ORDER else len(OBJECTIVE_ORDER)
        return str(ds["arch"].sel(model=model).item()), rank

    return ds.sel(model=sorted(ds["model"].values, key=panel_order))


def model_with(ds: xr.Dataset, objective: str, arch_prefix: str = "vit") -> str:
    """The run id of the first model trained with ``objective`` on an ``arch_prefix*`` backbone."""
    for model in ds["model"].values:
        one = ds.sel(model=model)
        if one["objective"].item() == objective and str(one["arch"].item()).startswith(arch_prefix):
            return str(model)
    raise KeyError(f"no {objective} model on a {arch_prefix}* backbone in {list(ds['model'].values)}")


def provenance_markdown(ds: xr.Dataset) -> str:
    """A Markdown list, one line per model: preset, seed, commit, time and package versions."""
    lines = []
    for model in ds["model"].values:
        attrs = json.loads(str(ds["provenance"].sel(model=model).item()))
        versions = json.loads(attrs.get("package_versions", "{}"))
        dirty = " (uncommitted changes)" if attrs.get("git_dirty") else ""
        lines.append(
            f"- `{model}`: preset `{attrs.get('preset', '?')}`, seed {attrs.get('seed', '?')}, "
            f"commit `{str(attrs.get('git_commit', '?'))[:10]}`{dirty}, made {attrs.get('created', '?')} "
            f"with torch {versions.get('torch', '?')}, timm {versions.get('timm', '?')}"
        )
    return "\n".join(lines)
