"""xarray results on disk: one netCDF file per run, written atomically, with provenance attrs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from mimstudy.atomic import atomic_path
from mimstudy.config import RunConfig
from mimstudy.provenance import provenance_attrs

ENGINE = "h5netcdf"


def result_path(config: RunConfig) -> Path:
    """``<results_dir>/<preset>/<notebook>/<run_id>.nc``"""
    return Path(config.results_dir) / config.preset / config.notebook / f"{config.run_id}.nc"


def save_dataset(ds: xr.Dataset, path: str | Path, parameters: dict, preset: str, seed: int,
                 notebook: str | None = None) -> Path:
    """Attach provenance to ``ds`` and write it to ``path`` atomically (netCDF via h5netcdf).

    ``notebook``: the notebook that made it, whose code (and the package code it imports) is hashed
    into the provenance (:func:`mimstudy.provenance.code_hashes`)."""
    ds = ds.copy()
    ds.attrs.update(provenance_attrs(parameters, preset, seed, notebook))
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine=ENGINE)
    return Path(path)


def save_result(ds: xr.Dataset, config: RunConfig) -> Path:
    """Save a run's dataset where :func:`result_path` says, with the run's parameters."""
    return save_dataset(ds, result_path(config), config.to_dict(), config.preset, config.seed, config.notebook)


def load_dataset(path: str | Path) -> xr.Dataset:
    """Open a result fully into memory (the file is closed afterwards)."""
    with xr.open_dataset(path, engine=ENGINE) as ds:
        return ds.load()


def stored_attrs(path: str | Path) -> dict | None:
    """The attributes (provenance) of a stored result, or ``None`` when there is no readable result."""
    path = Path(path)
    if not path.is_file():
        return None
    # xarray's engine (ENGINE), read directly; imported here, not at the top: every notebook reaches this
    # module's top-level statements, so a new import there would mark every stored result stale
    import h5netcdf

    try:
        with h5netcdf.File(path, "r") as f:  # the root attributes only (xarray would build every variable)
            return {k: v.decode() if isinstance(v, bytes) else v for k, v in f.attrs.items()}
    except (OSError, ValueError):
        return None


def parameters_in(attrs: dict | None) -> dict | None:
    """The run parameters recorded in a result's attributes (``None`` when they are not there)."""
    try:
        return None if attrs is None else json.loads(attrs["parameters"])
    except (KeyError, ValueError):
        return None


def stored_parameters(path: str | Path) -> dict | None:
    """The parameters a stored result was made with, or ``None`` when there is no readable result."""
    return parameters_in(stored_attrs(path))


def code_in(attrs: dict | None) -> dict[str, str] | None:
    """The code digests recorded in a result's attributes (``None`` for results made before code hashing)."""
    try:
        return None if attrs is None else json.loads(attrs["code_hashes"])
    except (KeyError, ValueError):
        return None


def _plain(value):
    """numpy scalars and arrays in netCDF attrs -> JSON-able Python values."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _pad_missing_coords(datasets: list[xr.Dataset]) -> list[xr.Dataset]:
    """Give every dataset the non-index coords that only some have (e.g. Swin's ``stage`` on ``layer``,
    absent from ViT runs), filled with NaN, so runs of different architectures concatenate."""
    union = {}
    for ds in datasets:
        for name, coord in ds.coords.items():
            if name not in ds.indexes:
                union.setdefault(name, coord.dims)
    padded = []
    for ds in datasets:
        missing = {name: dims for name, dims in union.items() if name not in ds.coords and set(dims) <= set(ds.dims)}
        padded.append(ds.assign_coords({name: (dims, np.full([ds.sizes[d] for d in dims], np.nan))
                                        for name, dims in missing.items()}))
    return padded


def _index_ragged_dims(datasets: list[xr.Dataset]) -> list[xr.Dataset]:
    """Give a dimension without a coordinate whose size differs between runs (a detector's detections per
    image) the positions 0, 1, ... as its index, so the outer join pads the shorter runs with NaN."""
    sizes: dict[str, set[int]] = {}
    for ds in datasets:
        for d, n in ds.sizes.items():
            if d not in ds.indexes:
                sizes.setdefault(d, set()).add(n)
    ragged = [d for d, ns in sizes.items() if len(ns) > 1]
    return [ds.assign_coords({d: np.arange(ds.sizes[d]) for d in ragged if d in ds.dims and d not in ds.indexes})
            for ds in datasets]


def load_runs(folder: str | Path, dim: str = "model") -> xr.Dataset:
    """Concatenate every run of one notebook (``*.nc`` in ``folder``) along ``dim``, sorted by name."""
    paths = sorted(Path(folder).glob("*.nc"))
    if not paths:
        raise FileNotFoundError(f"no results in {folder}: run the study first (make study)")
    return combine_runs([load_dataset(path) for path in paths], dim)


def combine_runs(datasets: list[xr.Dataset], dim: str = "model") -> xr.Dataset:
    """Concatenate runs (each with a scalar ``dim`` coord and its provenance attrs) as :func:`load_runs` does."""
    # each run's provenance survives the concatenation as a JSON string coord along ``dim``
    datasets = [ds.assign_coords(provenance=json.dumps(ds.attrs, sort_keys=True, default=_plain)) for ds in datasets]
    datasets = _index_ragged_dims(_pad_missing_coords(datasets))
    # coords="all": identity coords (objective, arch) always get the ``dim`` axis, even when equal
    return xr.concat(datasets, dim=dim, coords="all", compat="equals", join="outer", combine_attrs="drop_conflicts")
