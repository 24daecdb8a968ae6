"""The notebooks: parameters match their configs, and they run under nbval with the ci preset."""

import json
from pathlib import Path

import papermill
import pytest

from mimstudy.config import CONFIGS
from mimstudy.study.runner import NOTEBOOK_DIR, plan


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


def test_notebooks_pass_nbval_with_ci_parameters(ci_results):
    """The ci_results fixture runs every ci step under nbval (tests/conftest.py, nbval_preset) and fails
    when nbval does: here, every step's result is where the runner would have written it."""
    results, runs = ci_results
    steps = plan("ci", results_dir=results, runs_dir=runs)
    assert steps and all(step.result.is_file() for step in steps)
    assert (Path(results) / "ci" / "probes" / "vit_simmim.nc").is_file()
