"""Results go stale when their parameters or the code they depend on change (mimstudy.study.staleness)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mimstudy.provenance
from mimstudy.provenance import code_closure, code_hashes, imported_modules, notebook_source
from mimstudy.results import save_dataset, save_result, stored_attrs
from mimstudy.study.runner import plan, rerun_reasons
from mimstudy.study.staleness import CODE_NOT_RECORDED, CodeVersions, result_change

from .test_results import small_dataset
from .test_runner import fake_results

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mimstudy"


def test_closure_follows_imports_transitively_and_only_them():
    closure = {p.relative_to(ROOT).as_posix() for p in code_closure("from mimstudy.probes import probe_model\n")}
    # the package __init__s run on import; probes/__init__ imports attention, which imports more
    assert {"mimstudy/__init__.py", "mimstudy/probes/__init__.py", "mimstudy/probes/attention.py"} <= closure
    assert "mimstudy/models/geometry.py" in closure  # reached only through other modules
    assert not any(p.startswith(("mimstudy/book/", "mimstudy/study/")) for p in closure)
    # a name imported from a module is no module; a sub-module imported from a package is one
    assert imported_modules("from mimstudy.config import ProbeConfig\nimport os\n") == \
        {"mimstudy.config", "mimstudy.config.ProbeConfig"}
    assert [p.name for p in code_closure("from mimstudy import atomic\n")] == ["__init__.py", "atomic.py"]
    assert code_closure("import numpy\n") == []


def test_notebook_code_is_its_code_cells_without_magics(tmp_path):
    nb = {"cells": [{"cell_type": "markdown", "source": ["from mimstudy.book import pages"]},
                    {"cell_type": "code", "source": ["%matplotlib inline\n", "from mimstudy import atomic\n"]}]}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb))
    assert notebook_source(path) == "from mimstudy import atomic"


def scratch_copy(tmp_path: Path) -> Path:
    """The package, notebooks and presets in a scratch folder, to edit without touching the checkout."""
    scratch = tmp_path / "scratch"
    for name in ("mimstudy", "notebooks", "presets"):
        shutil.copytree(ROOT / name, scratch / name, ignore=shutil.ignore_patterns("__pycache__"))
    return scratch


def edit(path: Path, line: str) -> None:
    path.write_text(path.read_text() + "\n" + line + "\n")


def test_hashes_ignore_comments_and_see_code(tmp_path):
    scratch = scratch_copy(tmp_path)
    before = code_hashes("probes", scratch)
    assert before == code_hashes("probes", ROOT)  # a copy of the same code
    assert "notebooks/probes.ipynb" in before and "mimstudy/probes/attention.py" in before
    edit(scratch / "mimstudy" / "probes" / "attention.py", "# only a comment")
    assert code_hashes("probes", scratch) == before
    edit(scratch / "mimstudy" / "probes" / "attention.py", "EDITED = 1")
    after = code_hashes("probes", scratch)
    assert [f for f in after if after[f] != before[f]] == ["mimstudy/probes/attention.py"]
    assert code_hashes("missing_notebook", scratch) == {}


@pytest.mark.slow
def test_a_probe_edit_stales_its_results_and_an_unrelated_edit_does_not(tmp_path, monkeypatch):
    scratch = scratch_copy(tmp_path)
    monkeypatch.setattr(mimstudy.provenance, "CODE_ROOT", scratch)  # results record the scratch code
    steps = plan("ci", results_dir=str(tmp_path / "res"), runs_dir=str(tmp_path / "runs"))
    fake_results(steps)
    assert rerun_reasons(steps) == {}

    edit(scratch / "mimstudy" / "book" / "claims" / "verdicts.py", "UNRELATED = 1")  # no notebook imports it
    (scratch / "mimstudy" / "study" / "new_helper.py").write_text("X = 1\n")
    assert rerun_reasons(steps) == {}

    edit(scratch / "mimstudy" / "probes" / "attention.py", "EDITED = 1")
    reasons = rerun_reasons(steps)
    assert reasons, "a changed probe must stale the results made with it"
    assert {name.split("/")[0] for name in reasons} == {"evaluate", "probes", "trajectory", "paper_probes"}  # not pretrain
    assert set(reasons.values()) == {"code changed: mimstudy/probes/attention.py"}

    # the command line says the same, run from the scratch copy as a user would
    env = {**os.environ, "PYTHONPATH": str(scratch)}
    out = subprocess.run([sys.executable, "-m", "mimstudy.study.cli", "plan", "--preset", "ci", "--results-dir",
                          str(tmp_path / "res"), "--runs-dir", str(tmp_path / "runs")],
                         cwd=scratch, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "probes/vit_sup.nc (dry run): code changed: mimstudy/probes/attention.py" in out.stdout
    assert "[skip] pretrain/vit_sup" in out.stdout


def test_reasons_name_parameters_missing_results_and_unrecorded_code(tmp_path):
    steps = plan("ci", results_dir=str(tmp_path / "res"), runs_dir=str(tmp_path / "runs"))
    probe = next(s for s in steps if s.name == "probes/vit_sup")
    fake_results(steps, skip={probe.name})
    reasons = rerun_reasons(steps)
    assert reasons == {probe.name: "missing"}

    changed = probe.config.__class__(**{**probe.config.to_dict(), "num_images": 3})
    save_result(small_dataset("x"), changed)
    assert rerun_reasons(steps)[probe.name] == "parameters changed: num_images 3 -> 16"

    # a result saved before code hashing: same parameters, no code digests
    save_dataset(small_dataset("x"), probe.result, probe.config.to_dict(), "ci", 0)
    assert "code_hashes" not in stored_attrs(probe.result)
    assert result_change(probe.config, stored_attrs(probe.result), CodeVersions()) == CODE_NOT_RECORDED
    assert rerun_reasons(steps) == {probe.name: CODE_NOT_RECORDED}

    # a pre-training that re-runs stales what reads it, saying which
    pretrain = next(s for s in steps if s.name == "pretrain/vit_sup")
    fake_results([probe])
    save_result(small_dataset("vit_sup"), pretrain.config.__class__(**{**pretrain.config.to_dict(), "epochs": 1}))
    reasons = rerun_reasons(steps)
    assert reasons[pretrain.name] == "parameters changed: epochs 1 -> 2"
    assert reasons["probes/vit_sup"] == reasons["evaluate/vit_sup"] == "pretrain/vit_sup re-runs"
    assert rerun_reasons(steps, force=True)[pretrain.name] == "--force"


@pytest.mark.parametrize("notebook", ["pretrain", "evaluate", "probes", "paper_probes"])
def test_saved_results_record_the_code_of_their_notebook(tmp_path, notebook):
    from mimstudy.config import PretrainConfig

    from .test_runner import fake_weights

    step = next(s for s in plan("ci", results_dir=str(tmp_path)) if s.notebook == notebook)
    ds = small_dataset("m")
    if isinstance(step.config, PretrainConfig):  # a pre-training result names its final weights
        ds.attrs["weights_sha256"] = fake_weights(step.config)
    attrs = stored_attrs(save_result(ds, step.config))
    assert json.loads(attrs["code_hashes"]) == code_hashes(notebook)
    assert f"notebooks/{notebook}.ipynb" in json.loads(attrs["code_hashes"])
    assert result_change(step.config, attrs, CodeVersions()) is None
