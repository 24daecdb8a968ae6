"""The evidence of one preset: its stored results, read once, with what every claim family asks of them.

:class:`PresetResults` holds a preset's probes, sanity evaluation, pre-training curves, downstream
(Section 4.2) results and mask sweep, each ``None`` when the preset has none; the per-model
scale-free statistics (:mod:`mimstudy.book.claims.statistics`) and their bootstrap resamples are computed
once. Training seeds are the ``seed`` each run stored (its provenance), never assumed.

:meth:`PresetResults.integrity` is what the evidence says about itself, for every claim
(:meth:`mimstudy.book.claims.verdicts.Claim.judge`): a stale run (made with other parameters or code than
today's, :func:`mimstudy.book.records.stale_reasons`) carries no verdict, and neither do seeds that are
not independent — two seeds of one role whose stored probe arrays, training curves or downstream scores
are identical, or one run id stored in two files. Seeds made on different machines are pooled (a change
of CPU acts like another seed), and the verdict's notes say which machine made which.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property

import numpy as np
import xarray as xr

from mimstudy.book.claims.gates import PILOT_VARIABLES, GateResult, check_gates, masked_baselines, role_of
from mimstudy.book.stored import load_results, restrict, results_root, run_attr
from mimstudy.book.claims.statistics import scale_free
from mimstudy.book.claims.verdicts import N_BOOT, Blocker, Control, Estimate, bootstrap_samples, seed_estimate
from mimstudy.results import load_dataset

RANDOM = "random"  # the objective of the random-init control runs
NOTEBOOKS = ("probes", "evaluate", "pretrain", "downstream")
GEOMETRY = {"uniform_distance", "uniform_entropy", "max_distance"}  # the same for every run of an arch
FINGERPRINTS = {"probes": None, "pretrain": ("train_loss", "val_loss"), "downstream": None}  # None: every float variable
_LOAD = object()  # "read it from results/<preset>/" (the default of every dataset argument)


def load_pilots(preset: str) -> xr.Dataset | None:
    """What the gates read from every stored pilot of ``preset`` (SimMIM's masked-pixel baselines, MoCo's
    contrastive top-1 at random init), concatenated along ``model``."""
    paths = sorted((results_root() / "regime" / "pilot").glob(f"{preset}_s*.nc"))
    if not paths:
        return None
    pilots = [load_dataset(p) for p in paths]
    return xr.concat([ds[[v for v in PILOT_VARIABLES if v in ds]] for ds in pilots], dim="model")


def _load(notebook: str, preset: str, sweep: bool = False) -> xr.Dataset | None:
    try:
        return load_results(notebook, preset, sweep=sweep)
    except FileNotFoundError:
        return None


class PresetResults:
    """The stored results of one preset (module docstring); pass a dataset to use it instead of the stored one."""

    def __init__(self, preset: str, probes=_LOAD, evaluate=_LOAD, pretrain=_LOAD, downstream=_LOAD, pilot=_LOAD,
                 stale: Mapping[str, str] | None = None):
        """``stale``: ``{run id: why}`` of the runs that are not current; ``None`` (the default) reads it from
        every run's stored record (:func:`mimstudy.book.records.stale_reasons`)."""
        self.preset = preset
        self._stale = stale
        self._given = {"probes": probes, "evaluate": evaluate, "pretrain": pretrain, "downstream": downstream,
                       "pilot": pilot}
        self._stats: dict[str, xr.Dataset] = {}
        self._means: dict[str, xr.Dataset] = {}
        self._boots: dict[str, xr.Dataset] = {}
        self._fingerprints: dict[str, dict[str, str]] = {}

    def _dataset(self, notebook: str) -> xr.Dataset | None:
        given = self._given[notebook]
        return _load(notebook, self.preset) if given is _LOAD else given

    @cached_property
    def probes(self) -> xr.Dataset | None:
        return self._dataset("probes")

    @cached_property
    def evaluate(self) -> xr.Dataset | None:
        return self._dataset("evaluate")

    @cached_property
    def pretrain(self) -> xr.Dataset | None:
        return self._dataset("pretrain")

    @cached_property
    def downstream(self) -> xr.Dataset | None:
        return self._dataset("downstream")

    @cached_property
    def sweep(self) -> tuple[xr.Dataset, xr.Dataset] | None:
        """``(pretrain, probes)`` of the mask sweep's runs, or ``None``."""
        pretrain, probes = _load("pretrain", self.preset, sweep=True), _load("probes", self.preset, sweep=True)
        return None if pretrain is None or probes is None else (pretrain, probes)

    @cached_property
    def table(self) -> list[tuple[str, str, str, int]]:
        """``(run id, objective, arch, seed)`` of every probed model, read once (the seed its run stored)."""
        if self.probes is None:
            return []
        models, objectives, archs = (self.probes[name].values for name in ("model", "objective", "arch"))
        return [(str(m), str(o), str(a), int(run_attr(self.probes, m, "seed", 0)))
                for m, o, a in zip(models, objectives, archs)]

    def runs(self, objective: str, arch_prefix: str, arch: str | None = None) -> dict[int, str]:
        """``{seed: run id}`` of the models trained with ``objective`` on an ``arch_prefix*`` (or exactly ``arch``) backbone."""
        found: dict[int, str] = {}
        for model, obj, name, seed in self.table:
            if obj == objective and name.startswith(arch_prefix) and arch in (None, name):
                found.setdefault(seed, model)
        return dict(sorted(found.items()))

    def arch_of(self, model: str) -> str:
        return str(self.probes["arch"].sel(model=model).item())

    def controls(self, arch: str, n_roles: int) -> dict[str, list[str]]:
        """Random-init runs of ``arch`` for each of ``n_roles`` roles: role ``i`` of control ``k`` gets seed
        ``k + i`` (cyclically), so two roles never share a random model when there are several."""
        runs = list(self.runs(RANDOM, "", arch).values())
        if not runs:
            return {}
        return {f"role{i}": [runs[(k + i) % len(runs)] for k in range(len(runs))] for i in range(n_roles)}

    def control(self, arch: str) -> Control:
        """The random-init control of ``arch`` as :func:`mimstudy.book.claims.verdicts.blockers` reads it."""
        return Control(f"{arch} at random init", len(self.runs(RANDOM, "", arch)),
                       f"the random-init control probed (a probes run with `arch: {arch}` and `objective: random`)")

    def objective_of(self, model: str) -> str:
        for ds in (self.probes, self.evaluate, self.pretrain):
            if ds is not None and model in ds["model"].values:
                return str(ds["objective"].sel(model=model).item())
        return ""

    def datasets(self) -> dict[str, xr.Dataset]:
        """The preset's stored datasets that exist, by notebook (the mask sweep's as ``sweep/<notebook>``)."""
        found = {name: getattr(self, name) for name in NOTEBOOKS}
        if self._given["probes"] is _LOAD and self.sweep is not None:
            found.update({"sweep/pretrain": self.sweep[0], "sweep/probes": self.sweep[1]})
        return {name: ds for name, ds in found.items() if ds is not None}

    @cached_property
    def stale(self) -> dict[str, str]:
        """``{run id: why}`` of every stale run the preset's results hold (its first stale notebook's reason)."""
        if self._stale is not None:
            return dict(self._stale)
        from mimstudy.book.records import stale_reasons

        found: dict[str, str] = {}
        for name, ds in self.datasets().items():
            notebook = name.split("/")[-1]
            for run, why in stale_reasons(ds, notebook, results_root()).items():
                found.setdefault(run, f"{notebook}: {why}")
        return found

    @cached_property
    def records(self) -> dict[str, dict]:
        """``{run id: its stored attributes}`` over every dataset (the first dataset holding a run wins)."""
        found: dict[str, dict] = {}
        for ds in self.datasets().values():
            if "provenance" in ds.coords:
                for m in ds["model"].values:
                    found.setdefault(str(m), json.loads(str(ds["provenance"].sel(model=m).item())))
        return found

    @cached_property
    def duplicates(self) -> dict[str, str]:
        """``{run id: why}`` of run ids that two stored files hold (:func:`mimstudy.book.stored.load_unique_runs`)."""
        found: dict[str, str] = {}
        for ds in self.datasets().values():
            found.update(json.loads(ds.attrs.get("duplicate_runs", "{}")))
        return found

    def fingerprint(self, run: str) -> dict[str, str]:
        """``{notebook: hash}`` of the run's stored arrays (probes without the geometry, training losses,
        downstream scores), for the notebooks that hold it with some finite values (computed once a run)."""
        if run in self._fingerprints:
            return self._fingerprints[run]
        found = {}
        for notebook, names in FINGERPRINTS.items():
            ds = getattr(self, notebook)
            if ds is None or run not in ds["model"].values:
                continue
            one = restrict(ds, [run]).sel(model=run)
            arrays = {v: one.variables[v].values for v in one.data_vars}  # arrays, not DataArrays: read for every run
            chosen = sorted(v for v, a in arrays.items() if (names is None or v in names) and v not in GEOMETRY
                            and a.dtype.kind == "f" and not np.isnan(a).all())
            if chosen:
                digest = hashlib.sha1()
                for v in chosen:
                    digest.update(v.encode() + np.ascontiguousarray(arrays[v], dtype=np.float64).tobytes())
                found[notebook] = digest.hexdigest()
        self._fingerprints[run] = found
        return found

    def copies(self, runs: Sequence[str]) -> list[tuple[str, str, str]]:
        """``(run, earlier run, notebook)`` for every run of ``runs`` whose stored arrays in ``notebook``
        are identical to those of an earlier run of the same role (another seed): not an independent seed."""
        found, seen = [], {}
        for run in dict.fromkeys(runs):
            role = role_of(run)[0]
            for notebook, digest in self.fingerprint(run).items():
                twin = seen.setdefault((role, notebook, digest), run)
                if twin != run:
                    found.append((run, twin, notebook))
        return found

    def runs_in(self, notebooks: Sequence[str]) -> list[str]:
        """Every run id of the preset's ``notebooks`` (names as :meth:`datasets` gives them)."""
        found = self.datasets()
        return list(dict.fromkeys(str(m) for name in notebooks if name in found for m in found[name]["model"].values))

    def integrity(self, runs: Sequence[str] = ()) -> tuple[list[Blocker], list[str]]:
        """What the stored evidence says about itself for a verdict that read ``runs`` (every run of the
        preset when ``runs`` is empty): blockers for stale runs, copied seeds and runs stored twice, and a
        note naming the machine of each run when they were made on more than one."""
        runs = list(dict.fromkeys(runs)) or list(self.records)
        found = []
        stale = {run: self.stale[run] for run in runs if run in self.stale}
        if stale:
            by_reason: dict[str, list[str]] = {}
            for run, why in stale.items():
                by_reason.setdefault(why, []).append(f"`{run}`")
            found.append(Blocker("stale results: " + "; ".join(f"{', '.join(r)} ({why})" for why, r in by_reason.items()),
                                 "the stale runs re-made with today's code and preset (`mimstudy plan` lists them)",
                                 "stale"))
        copied = [f"`{run}` repeats `{twin}` ({notebook} identical)" for run, twin, notebook in self.copies(runs)]
        copied += [why for run, why in self.duplicates.items() if run in runs]
        if copied:
            found.append(Blocker("seeds not independent: " + "; ".join(copied),
                                 "independent training seeds (each seed's own run, not a copy)", "seeds not independent"))
        machines = {run: str(self.records.get(run, {}).get("hardware", "?")) for run in runs if run in self.records}
        notes = []
        if len(set(machines.values())) > 1:
            by_machine: dict[str, list[str]] = {}
            for run, machine in machines.items():
                by_machine.setdefault(machine, []).append(f"`{run}`")
            notes.append("Seeds made on different machines are pooled: " + "; ".join(
                f"{machine}: {', '.join(r)}" for machine, r in by_machine.items()) + ".")
        return found, notes

    @cached_property
    def pilot(self) -> xr.Dataset | None:
        """The preset's pilot summaries, every seed (``results/regime/pilot/<preset>_s<seed>.nc``), or ``None``."""
        given = self._given["pilot"]
        return load_pilots(self.preset) if given is _LOAD else given

    def gate(self, model: str) -> GateResult:
        return check_gates(self.evaluate, model, self.objective_of(model), self.pretrain,
                           masked_baselines(self.pilot, model), self.pilot)

    def gates(self, models) -> list[GateResult]:
        return [self.gate(m) for m in dict.fromkeys(models)]

    # --- scale-free statistics of the probes ---------------------------------------------------------

    def stats(self, model: str) -> xr.Dataset:
        if model not in self._stats:
            self._stats[model] = scale_free(restrict(self.probes, [model]).sel(model=model))
        return self._stats[model]

    def lacking(self, needs: tuple[str, ...], models: list[str]) -> str | None:
        """The first statistic of ``needs`` that some model of ``models`` has no values for (else ``None``)."""
        for need in needs:
            if any(need not in self.stats(m) or not bool(self.stats(m)[need].notnull().any()) for m in models):
                return need
        return None

    def image_means(self, model: str) -> xr.Dataset:
        if model not in self._means:
            stats = self.stats(model)
            self._means[model] = stats.mean("image") if "image" in stats.dims else stats
        return self._means[model]

    def resamples(self, model: str) -> xr.Dataset:
        """Bootstrap means over the test images (``boot`` dim) of every per-image statistic; the same
        resampled images for every model with the same image count, so models stay paired."""
        if model not in self._boots:
            stats = self.stats(model)
            self._boots[model] = xr.Dataset({name: bootstrap_samples(var, N_BOOT, 0) if "image" in var.dims else var
                                             for name, var in stats.data_vars.items()})
        return self._boots[model]

    def zero_by_construction(self, statistic: Callable, run: str, n_roles: int) -> bool:
        """Whether ``statistic`` is exactly zero when every one of its ``n_roles`` roles is the same model
        ``run``: a difference between roles, whose random-init control is zero on average by construction."""
        same = self.image_means(run)
        value = float(statistic({f"role{i}": same for i in range(n_roles)}))
        return value == 0.0

    def estimate(self, statistic: Callable, runs: dict[str, list[str]]) -> Estimate:
        """``statistic`` over ``runs`` (role -> one run per seed): a t interval over seeds when there are
        two or more, else a bootstrap over the test images of the single seed (a point when the
        statistic has no per-image values, e.g. CKA)."""
        roles = list(runs)
        n = len(runs[roles[0]])
        values = [float(statistic({r: self.image_means(runs[r][s]) for r in roles})) for s in range(n)]
        if n >= 2:
            est = seed_estimate(values)
            est.interval = f"t interval over {n} seeds"
            return est
        samples = statistic({r: self.resamples(runs[r][0]) for r in roles})
        if isinstance(samples, xr.DataArray) and samples.dims == ("boot",):
            return Estimate.from_samples(values[0], samples.values, "bootstrap over the test images of one seed")
        return Estimate.point(values[0])
