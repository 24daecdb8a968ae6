"""The notebooks: parameters match their configs, and they run under nbval with the ci preset."""

import json
import subprocess
import sys
from pathlib import Path

import papermill
import pytest

from mimstudy.config import CONFIGS
from mimstudy.study.runner import NOTEBOOK_DIR, plan

from .conftest import requires_real_data


@pytest.mark.parametrize("notebook", sorted(CONFIGS))
def test_parameters_cell_matches_config(notebook):
    params = papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{notebook}.ipynb"))
    config = CONFIGS[notebook]()
    assert list(params) == config.field_names()
    for name, info in params.items():
        assert eval(info["default"]) == getattr(config, name), name  # noqa: S307 - our own literals


@pytest.mark.parametrize("notebook", sorted(CONFIGS))
def test_notebooks_are_committed_without_outputs(notebook):
    cells = json.loads((NOTEBOOK_DIR / f"{notebook}.ipynb").read_text())["cells"]
    assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code")


@requires_real_data
def test_notebooks_pass_nbval_with_ci_parameters(tmp_path):
    prepared = []
    for i, step in enumerate(plan("ci", results_dir=str(tmp_path / "results"), runs_dir=str(tmp_path / "runs"))):
        out = tmp_path / f"{i:02d}_{step.notebook}_{step.config.run_id}.ipynb"
        papermill.execute_notebook(str(NOTEBOOK_DIR / f"{step.notebook}.ipynb"), str(out),
                                   parameters=step.config.to_dict(), prepare_only=True)
        prepared.append(str(out))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
         "-c", str(tmp_path / "pytest.ini"), *prepared],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert (tmp_path / "results" / "ci" / "probes" / "vit_simmim.nc").is_file()
