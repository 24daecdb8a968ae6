"""The evidence of one preset: its stored results, read once, with what every claim family asks of them.

:class:`PresetResults` holds a preset's probes, sanity evaluation, pre-training curves, downstream
(Section 4.2) results and mask sweep, each ``None`` when the preset has none; the per-model
scale-free statistics (:mod:`mimstudy.book.statistics`) and their bootstrap resamples are computed
once. Training seeds are the ``seed`` each run stored (its provenance), never assumed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

import xarray as xr

from mimstudy.book.gates import BASELINES, GateResult, check_gates, masked_baselines
from mimstudy.book.pages import load_results, restrict, results_root, run_attr
from mimstudy.book.statistics import scale_free
from mimstudy.book.verdicts import N_BOOT, Control, Estimate, bootstrap_samples, seed_estimate
from mimstudy.results import load_dataset

RANDOM = "random"  # the objective of the random-init control runs
_LOAD = object()  # "read it from results/<preset>/" (the default of every dataset argument)


def load_pilots(preset: str) -> xr.Dataset | None:
    """The masked-pixel baselines of every stored pilot of ``preset``, concatenated along ``model``."""
    paths = sorted((results_root() / "regime" / "pilot").glob(f"{preset}_s*.nc"))
    if not paths:
        return None
    pilots = [load_dataset(p) for p in paths]
    return xr.concat([ds[[b for b in BASELINES if b in ds]] for ds in pilots], dim="model")


def _load(notebook: str, preset: str, sweep: bool = False) -> xr.Dataset | None:
    try:
        return load_results(notebook, preset, sweep=sweep)
    except FileNotFoundError:
        return None


class PresetResults:
    """The stored results of one preset (module docstring); pass a dataset to use it instead of the stored one."""

    def __init__(self, preset: str, probes=_LOAD, evaluate=_LOAD, pretrain=_LOAD, downstream=_LOAD, pilot=_LOAD):
        self.preset = preset
        self._given = {"probes": probes, "evaluate": evaluate, "pretrain": pretrain, "downstream": downstream,
                       "pilot": pilot}
        self._stats: dict[str, xr.Dataset] = {}
        self._means: dict[str, xr.Dataset] = {}
        self._boots: dict[str, xr.Dataset] = {}

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
        """The random-init control of ``arch`` as :func:`mimstudy.book.verdicts.blockers` reads it."""
        return Control(f"{arch} at random init", len(self.runs(RANDOM, "", arch)),
                       f"the random-init control probed (a probes run with `arch: {arch}` and `objective: random`)")

    def objective_of(self, model: str) -> str:
        for ds in (self.probes, self.evaluate, self.pretrain):
            if ds is not None and model in ds["model"].values:
                return str(ds["objective"].sel(model=model).item())
        return ""

    @cached_property
    def pilot(self) -> xr.Dataset | None:
        """The preset's pilot summaries, every seed (``results/regime/pilot/<preset>_s<seed>.nc``), or ``None``."""
        given = self._given["pilot"]
        return load_pilots(self.preset) if given is _LOAD else given

    def gate(self, model: str) -> GateResult:
        return check_gates(self.evaluate, model, self.objective_of(model), self.pretrain,
                           masked_baselines(self.pilot, model))

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
