"""Helpers for the book's pages: find stored results, pick models, describe provenance.

Pages read ``<results>/<preset>/<notebook>/*.nc`` for each preset of :func:`book_presets`, one after
the other. ``MIMSTUDY_BOOK_PRESET`` is a comma-separated list of presets (default ``quick,gpu``: the
CPU-scale results, then the GPU-scale ones); the first is always rendered (missing results are an
error), the others only when ``<results>/<preset>`` exists. ``MIMSTUDY_RESULTS_DIR`` moves the results
folder (e.g. ``MIMSTUDY_BOOK_PRESET=cpu,gpu`` renders the ``cpu`` run next to the ``gpu`` one).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import stat
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import yaml

from mimstudy.atomic import atomic_path
from mimstudy.results import combine_runs, load_dataset

REPO_ROOT = Path(__file__).resolve().parents[2]
OBJECTIVE_ORDER = ("supervised", "moco", "simmim", "finetune")
OBJECTIVE_LABELS = {
    "supervised": "supervised",
    "moco": "MoCo v3",
    "simmim": "SimMIM",
    "finetune": "SimMIM, then supervised fine-tuning",
}
PAPER_LABELS = {  # the same objectives as the paper's table rows name them
    "supervised": "SUP",
    "moco": "MoCo v3",
    "simmim": "MIM (SimMIM)",
    "finetune": "SimMIM → FT",
    "random": "RAND (random init)",
}
PROBE_DIMS = ("layer", "head", "image", "layer_j", "head_j")


# The claim-carrying preset first (every chapter opens with it), then the default of `make study`,
# then the GPU preset: each shown when its results exist.
DEFAULT_BOOK_PRESETS = "cpu,quick,gpu"


def listed_presets() -> list[str]:
    """The presets named by ``MIMSTUDY_BOOK_PRESET`` (comma-separated), in order, without repeats."""
    names = [name.strip() for name in os.environ.get("MIMSTUDY_BOOK_PRESET", DEFAULT_BOOK_PRESETS).split(",")]
    names = list(dict.fromkeys(name for name in names if name))
    return names or DEFAULT_BOOK_PRESETS.split(",")


def book_presets() -> list[str]:
    """The presets each results chapter renders, in order: the listed ones whose results exist
    (``results_root()/<preset>`` is a folder); when none does, the first listed one, so that loading
    its results raises the usual error."""
    listed = listed_presets()
    return [name for name in listed if (results_root() / name).is_dir()] or listed[:1]


def book_preset() -> str:
    """The book's first preset: the first listed one whose results exist (``cpu``, else ``quick``, by default)."""
    return book_presets()[0]


SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's: ~10x faster on the large presets


def preset_heading(preset: str) -> str:
    """A Markdown heading (``### ...``) naming ``preset`` and the ``description:`` of its YAML file
    (the bare name when there is no such file or it has no description)."""
    from mimstudy.config import ConfigError
    from mimstudy.study.runner import preset_file  # imports torch: only when a page asks for a heading

    try:
        spec = yaml.load(preset_file(preset).read_text(), Loader=SAFE_LOADER)
    except (ConfigError, OSError, yaml.YAMLError):
        spec = None
    description = str(spec.get("description") or "").strip() if isinstance(spec, dict) else ""
    return f"### The `{preset}` preset" + (f": {description}" if description else "")


def results_root() -> Path:
    return Path(os.environ.get("MIMSTUDY_RESULTS_DIR", REPO_ROOT / "results"))


SWEEP_PREFIX = "sweep_"  # run ids of the mask-ratio x mask-patch-size sweep (Figure 2a)


def _combined_file(paths: list[Path]) -> Path | None:
    """Where :func:`load_unique_runs` keeps the combined runs of ``paths`` for the book's other pages
    (each page runs in a kernel of its own and reads the same folders): a file in the cache folder
    (:func:`mimstudy.study.staleness.reach_cache`) named by a digest of the files' names and bytes,
    of this module's and :mod:`mimstudy.results`' sources and of the xarray and Python versions, so
    that an entry never goes stale; ``None`` without a cache folder."""
    from mimstudy import results
    from mimstudy.study.staleness import reach_cache

    folder = reach_cache()
    if folder is None:
        return None
    digest = hashlib.sha256(f"{xr.__version__} {sys.version}".encode())
    for source in (Path(__file__), Path(results.__file__)):
        digest.update(source.read_bytes())
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return folder / f"runs-{digest.hexdigest()}.pickle"


def _private(path: Path) -> bool:
    """Is ``path`` a file that only this user wrote and can write, in a folder only this user can
    write? (Unpickling runs code: another user's file is not read.)"""
    try:
        file, folder = path.stat(), path.parent.stat()
    except OSError:
        return False
    uid = os.getuid()
    return (file.st_uid == uid and folder.st_uid == uid
            and not (file.st_mode | folder.st_mode) & (stat.S_IWGRP | stat.S_IWOTH))


def load_unique_runs(folder: Path) -> xr.Dataset:
    """The runs of one notebook folder (``*.nc``, by name) concatenated along ``model``, each run id once.

    A file that holds a run id another file already holds (a copy whose ``seed`` attribute alone was
    changed, say) is left out, and ``attrs["duplicate_runs"]`` (JSON ``{run id: why}``) says so: the
    verdicts read it as seeds that are not independent, instead of failing on a duplicated index.

    The combined runs are kept in the cache folder under a digest of the files' bytes
    (:func:`_combined_file`): the book's pages, each in its own kernel, read each folder once per build
    instead of once per page."""
    paths = sorted(Path(folder).glob("*.nc"))
    if not paths:
        raise FileNotFoundError(f"no results in {folder}: run the study first (make study)")
    cached = _combined_file(paths)
    if cached is not None and cached.is_file() and _private(cached):
        try:
            with open(cached, "rb") as f:
                return pickle.load(f)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            pass  # an unreadable entry is made again
    kept: dict[str, tuple[Path, xr.Dataset]] = {}
    duplicates: dict[str, str] = {}
    for path in paths:
        ds = load_dataset(path)
        run = str(ds["model"].item()) if "model" in ds.coords else path.stem
        if run in kept:
            first, other = kept[run]
            why = (f"`{path.name}` holds the run `{run}` that `{first.name}` holds (seed attribute "
                   f"{ds.attrs.get('seed', '?')} vs {other.attrs.get('seed', '?')}): a copy, not another seed")
            duplicates[run] = f"{duplicates[run]}; {why}" if run in duplicates else why
            continue
        kept[run] = (path, ds)
    combined = combine_runs([ds for _, ds in kept.values()])
    if duplicates:
        combined.attrs["duplicate_runs"] = json.dumps(duplicates)
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(cached) as tmp, open(tmp, "wb") as f:
                pickle.dump(combined, f, protocol=pickle.HIGHEST_PROTOCOL)
        except OSError:
            pass  # a read-only cache folder only costs time
    return combined


def load_results(notebook: str, preset: str | None = None, sweep: bool = False) -> xr.Dataset:
    """Runs of ``notebook`` for ``preset`` (default: :func:`book_preset`), models ordered as in the paper's panels.

    The main comparison (``sweep=False``) leaves out the runs of the mask sweep (run ids starting with
    ``sweep_``); ``sweep=True`` returns only those.
    """
    ds = load_unique_runs(results_root() / (preset or book_preset()) / notebook)
    ds.attrs["notebook"] = notebook  # for provenance_markdown's currency check
    chosen = [m for m in ds["model"].values if str(m).startswith(SWEEP_PREFIX) == sweep]
    if not chosen:
        raise FileNotFoundError(f"no {'sweep' if sweep else 'main'} runs of {notebook} in preset {preset or book_preset()!r}")
    ds = ds.sel(model=chosen)

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


def provenance_markdown(ds: xr.Dataset, notebook: str | None = None, label: str = "") -> str:
    """Under a figure: one provenance line, a warning when results are stale, the full record collapsed
    (:func:`mimstudy.book.records.provenance_block`). ``notebook`` defaults to the one
    :func:`load_results` read ``ds`` from."""
    from mimstudy.book.records import provenance_block

    return provenance_block(ds, notebook or ds.attrs["notebook"], results_root(), label)


def models_by_objective(ds: xr.Dataset, arch_prefix: str = "vit") -> dict[str, list[str]]:
    """Run ids per objective (several when a preset repeats runs over seeds), on ``arch_prefix*``
    backbones, objectives in the paper's panel order (unknown objectives last)."""
    found: dict[str, list[str]] = {}
    for model in ds["model"].values:
        one = ds.sel(model=model)
        if str(one["arch"].item()).startswith(arch_prefix):
            found.setdefault(str(one["objective"].item()), []).append(str(model))
    rank = {o: i for i, o in enumerate(OBJECTIVE_ORDER)}
    return {o: found[o] for o in sorted(found, key=lambda o: rank.get(o, len(rank)))}


def panel_models(ds: xr.Dataset, arch_prefix: str = "vit", objectives=OBJECTIVE_ORDER) -> list[str]:
    """One run id (the first seed) per objective in ``objectives`` that is present, in panel order."""
    found = models_by_objective(ds, arch_prefix)
    return [found[o][0] for o in found if o in objectives]


def find_model(ds: xr.Dataset, objective: str, arch_prefix: str = "vit") -> str | None:
    """Like :func:`model_with`, but ``None`` when there is no such model."""
    runs = models_by_objective(ds, arch_prefix).get(objective)
    return runs[0] if runs else None


def absent_note(ds: xr.Dataset, arch_prefix: str = "vit", objectives=OBJECTIVE_ORDER, preset: str | None = None) -> str:
    """A sentence naming the objectives of ``objectives`` with no ``arch_prefix*`` model in ``ds`` ('' if none),
    as results of ``preset`` (default: :func:`book_preset`)."""
    found = models_by_objective(ds, arch_prefix)
    missing = [OBJECTIVE_LABELS.get(o, "random init (the control)" if o == "random" else o)
               for o in objectives if o not in found]
    if not missing:
        return ""
    return (f"The `{preset or book_preset()}` results have no {arch_prefix}* model trained with "
            f"{', '.join(missing)}, so {'its panel is' if len(missing) == 1 else 'their panels are'} left out.")


def present_along(values: np.ndarray, axis: int) -> np.ndarray:
    """Whether each index of ``axis`` holds some value that is not missing (NaN, NaT, None), as xarray's
    ``notnull().any(other dims)``: a boolean array as long as that axis."""
    present = ~pd.isnull(values)
    return present.any(axis=tuple(i for i in range(present.ndim) if i != axis))


def restrict(ds: xr.Dataset, models: list[str]) -> xr.Dataset:
    """``ds`` for ``models`` only, without the NaN padding that concatenation with other models added
    (layers, heads or images that all of ``models`` lack). NaN-padded Swin heads within a model stay."""
    sub = ds.sel(model=list(models))
    for dim in PROBE_DIMS:
        if dim not in sub.dims:
            continue
        keep = None
        for name in sub.data_vars:  # on the variables' arrays: a DataArray per variable costs more than the test
            var = sub.variables[name]
            if dim in var.dims:
                present = present_along(var.values, var.dims.index(dim))
                keep = present if keep is None else keep | present
        if keep is not None:
            sub = sub.isel({dim: keep})
    for name in ("stage", "stage_j"):  # one layer -> stage map shared by all models: make it 1-D again
        if name in sub.coords and "model" in sub[name].dims:
            first = sub[name].isel(model=0, drop=True)
            if bool(first.notnull().all()) and bool((sub[name] == first).all()):
                sub = sub.assign_coords({name: first.astype(int)})
    return sub


def per_layer_table(values: xr.DataArray, digits: int = 2, unit: str = "") -> str:
    """A Markdown table of ``values`` ``(model, layer)``: one row per layer, one column per model
    (with a ``stage`` column when ``values`` has a 1-D stage coord)."""
    models = [str(m) for m in values["model"].values]
    stage = values.coords.get("stage")
    with_stage = stage is not None and stage.dims == ("layer",)
    suffix = f" ({unit})" if unit else ""
    head = ["layer"] + (["stage"] if with_stage else []) + [f"{m}{suffix}" for m in models]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, layer in enumerate(values["layer"].values):
        cells = [str(layer)] + ([str(int(stage.values[i]))] if with_stage else [])
        cells += [f"{values.sel(model=m, layer=layer).item():.{digits}f}" for m in models]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def parameters_of(ds: xr.Dataset, model: str) -> dict:
    """The run parameters stored in ``model``'s provenance (``{}`` if there are none)."""
    attrs = json.loads(str(ds["provenance"].sel(model=model).item()))
    params = attrs.get("parameters", "{}")
    return json.loads(params) if isinstance(params, str) else dict(params)


EVALUATION_COLUMNS = (("pretrained", "head", "trained, head"), ("pretrained", "patch_mean", "trained, patch mean"),
                      ("random_init", "patch_mean", "random init"), ("raw_pixels", "patch_mean", "raw pixels"))


def _accuracy_cell(one: xr.Dataset, var: str, weights: str, pool: str) -> str:
    """One accuracy in %, or "–" where the stored result has no such entry (older results: no pool, no pixels)."""
    if var not in one or weights not in one["weights"].values:
        return "–"
    value = one[var].sel(weights=weights)
    if "pool" in value.dims:
        value = value.sel(pool=pool)
    elif pool != "head" and weights != "random_init":
        return "–"  # made before patch-mean pooling: only the head's features were scored
    return f"{100 * value.item():.1f}%"


def evaluation_table(ds: xr.Dataset) -> str:
    """Markdown: k-NN and linear-probe accuracy of each pre-trained model, its random init and raw pixels."""
    labels = [label for _, _, label in EVALUATION_COLUMNS]
    rows = ["| model | objective | arch | " + " | ".join(f"k-NN {x}" for x in labels) + " | "
            + " | ".join(f"linear {x}" for x in labels) + " |",
            "|---|---|---|" + "---|" * (2 * len(labels))]
    for model in ds["model"].values:
        one = ds.sel(model=model)
        cells = [f"`{model}`", OBJECTIVE_LABELS.get(str(one["objective"].item()), str(one["objective"].item())),
                 str(one["arch"].item())]  # fmt: skip
        for var in ("knn_accuracy", "linear_accuracy"):
            cells += [_accuracy_cell(one, var, weights, pool) for weights, pool, _ in EVALUATION_COLUMNS]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def panels(ds: xr.Dataset, arch_prefix: str = "vit", objectives=OBJECTIVE_ORDER) -> xr.Dataset | None:
    """:func:`restrict` to :func:`panel_models` (one run per present objective), or ``None`` if none."""
    models = panel_models(ds, arch_prefix, objectives)
    return restrict(ds, models) if models else None


def run_attr(ds: xr.Dataset, model: str, key: str, default=None):
    """One attr of ``model``'s stored dataset (kept in its ``provenance`` JSON)."""
    return json.loads(str(ds["provenance"].sel(model=model).item())).get(key, default)
