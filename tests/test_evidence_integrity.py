"""What the stored evidence says about itself, on a results tree built from the committed `cpu` seed 0:
seeds that are copies of seed 0 give *undetermined (seeds not independent)*, a run stored twice is said,
not crashed on, and a stale run carries no verdict."""

import json
import shutil
from pathlib import Path

import pytest

from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.stored import REPO_ROOT, load_results
from mimstudy.book.claims.registry import claim
from mimstudy.book.rendering import short_cell
from mimstudy.results import ENGINE, load_dataset

COMMITTED = REPO_ROOT / "results" / "cpu"
NOTEBOOKS = ("probes", "evaluate", "pretrain")
ROLES = ("vit_sup", "vit_simmim", "vit_random")

needs_cpu = pytest.mark.skipif(not (COMMITTED / "probes" / "vit_sup-s0.nc").is_file(),
                               reason="the committed cpu seed-0 results are not in this checkout")


def copy_seed(root: Path, notebook: str, role: str, seed: int, rename: bool = True) -> None:
    """Seed 0 of ``role`` stored again as seed ``seed``: its ``seed`` attribute changed and, with ``rename``,
    its run id too (file name ``<role>-s<seed>.nc`` either way)."""
    ds = load_dataset(COMMITTED / notebook / f"{role}-s0.nc")
    run = f"{role}-s{seed}" if rename else f"{role}-s0"
    ds = ds.assign_coords(model=run)
    ds.attrs["seed"] = seed
    params = json.loads(ds.attrs.get("parameters", "{}"))
    params.update(seed=seed, run_id=run)
    ds.attrs["parameters"] = json.dumps(params)
    ds.to_netcdf(root / "cpu" / notebook / f"{role}-s{seed}.nc", engine=ENGINE)


def tree(tmp_path: Path, rename: bool = True) -> Path:
    for notebook in NOTEBOOKS:
        (tmp_path / "cpu" / notebook).mkdir(parents=True)
        for role in ROLES:
            source = COMMITTED / notebook / f"{role}-s0.nc"
            if source.is_file():
                shutil.copy(source, tmp_path / "cpu" / notebook / source.name)
                for seed in (1, 2):
                    copy_seed(tmp_path, notebook, role, seed, rename)
    return tmp_path


@needs_cpu
def test_copied_seeds_are_not_independent(tmp_path, monkeypatch):
    monkeypatch.setenv("MIMSTUDY_RESULTS_DIR", str(tree(tmp_path)))
    results = PresetResults("cpu", stale={}, pilot=None)  # currency aside: this test is about the seeds
    assert set(results.runs("supervised", "vit")) == {0, 1, 2}  # three "seeds" by their attributes
    verdict = claim("vit-locality").judge(results)
    assert verdict.verdict == "undetermined"
    assert "seeds not independent" in [b.tag for b in verdict.blockers]
    assert "`vit_sup-s1` repeats `vit_sup-s0` (probes identical)" in verdict.headline
    assert short_cell(verdict).startswith("**undetermined** (") and "seeds not independent" in short_cell(verdict)
    for check in verdict.checks:  # the copies' interval over seeds has zero width: what the rule guards against
        assert check.estimate.n == 3 and check.estimate.low == pytest.approx(check.estimate.high)


@needs_cpu
def test_independent_seeds_are_not_flagged(tmp_path, monkeypatch):
    monkeypatch.setenv("MIMSTUDY_RESULTS_DIR", str(tree(tmp_path)))
    for seed in (1, 2):  # seed k's probes now differ from seed 0's (a different run)
        path = tmp_path / "cpu" / "probes" / f"vit_sup-s{seed}.nc"
        ds = load_dataset(path)
        ds["attention_distance"] = ds["attention_distance"] * (1 + 0.01 * seed)
        ds.to_netcdf(path, engine=ENGINE)
    results = PresetResults("cpu", stale={}, pilot=None)
    copies = results.copies([f"vit_sup-s{s}" for s in range(3)])
    assert {(run, notebook) for run, _, notebook in copies} == {("vit_sup-s1", "pretrain"), ("vit_sup-s2", "pretrain")}
    assert results.copies(["vit_sup-s0", "vit_simmim-s0", "vit_random-s0"]) == []  # other roles: never copies


@needs_cpu
def test_a_run_stored_twice_is_said_not_crashed_on(tmp_path, monkeypatch):
    monkeypatch.setenv("MIMSTUDY_RESULTS_DIR", str(tree(tmp_path, rename=False)))  # only the seed attribute changed
    probes = load_results("probes", "cpu")
    assert sorted(probes["model"].values) == ["vit_random-s0", "vit_simmim-s0", "vit_sup-s0"]
    assert "`vit_sup-s1.nc` holds the run `vit_sup-s0`" in json.loads(probes.attrs["duplicate_runs"])["vit_sup-s0"]
    verdict = claim("vit-locality").judge(PresetResults("cpu", stale={}, pilot=None))
    assert verdict.verdict == "undetermined" and "seeds not independent" in [b.tag for b in verdict.blockers]
    assert "a copy, not another seed" in verdict.headline


@needs_cpu
def test_a_stale_result_blocks_its_verdict(tmp_path, monkeypatch):
    monkeypatch.setenv("MIMSTUDY_RESULTS_DIR", str(tree(tmp_path)))
    for seed in (1, 2):  # independent seeds (so that only currency is at stake)
        path = tmp_path / "cpu" / "probes" / f"vit_simmim-s{seed}.nc"
        ds = load_dataset(path)
        ds["attention_distance"] = ds["attention_distance"] * (1 + 0.01 * seed)
        ds.to_netcdf(path, engine=ENGINE)
    stale = {"vit_simmim-s2": "probes: code changed: mimstudy/probes/attention.py"}
    verdict = claim("vit-locality").judge(PresetResults("cpu", stale=stale, pilot=None))
    assert verdict.verdict == "undetermined" and "stale" in [b.tag for b in verdict.blockers]
    assert "`vit_simmim-s2` (probes: code changed" in verdict.headline
    assert "stale" not in [b.tag for b in claim("vit-locality").judge(PresetResults("cpu", stale={}, pilot=None)).blockers]


def test_stale_runs_are_read_from_the_stored_records(monkeypatch):
    """The default: currency from each run's record (here a preset with no file: every run is stale)."""
    from tests.test_claims import planted

    results = planted()
    unchecked = PresetResults("planted", probes=results.probes, evaluate=results.evaluate, pretrain=results.pretrain,
                              downstream=None, pilot=results.pilot)
    assert set(unchecked.stale) >= {"vit_simmim-s0", "vit_supervised-s0"}
    verdict = claim("vit-locality").judge(unchecked)
    assert verdict.verdict == "undetermined" and "stale" in [b.tag for b in verdict.blockers]
    assert "has no file in presets/" in verdict.headline
