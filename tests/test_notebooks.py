"""The notebooks: parameters match their configs (they run under nbval with the ci preset: tests/test_ci_preset.py)."""

import json

import papermill
import pytest

from mimstudy.config import CONFIGS
from mimstudy.study.runner import NOTEBOOK_DIR


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
