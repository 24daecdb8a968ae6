"""Staleness at the grain of definitions (mimstudy.study.reachable_code): an edit a notebook never
reaches keeps its results current; every edit it may reach, and anything not analysed, stales them."""

import json
import os
import subprocess

import pytest

import mimstudy.provenance
from mimstudy.provenance import code_hashes, notebook_source
from mimstudy.study.reachable_code import CodeTree, Unanalysable, reached_statements, same_reach
from mimstudy.study.runner import plan, rerun_reasons

from .test_runner import fake_results
from .test_staleness import ROOT, scratch_copy

CONFIG = '''
import json
from dataclasses import dataclass

LIMIT = 3
TASKS = ("pose", "depth")

def _require(ok):
    if not ok:
        raise ValueError

@dataclass
class Pretrain:
    steps: int = 2
    def validate(self):
        _require(self.steps <= LIMIT)

@dataclass
class Downstream:
    task: str = "pose"
    def validate(self):
        from mimstudy.tasks import known
        _require(self.task in TASKS and known(self.task))
'''
TASKS = "def known(name):\n    return True\n"
REGISTRY = "from timm import register_model\n\n@register_model\ndef tiny():\n    return 1\n\ndef unused():\n    return 2\n"
NOTEBOOK = "from mimstudy.config import Pretrain\nimport mimstudy.registry\nPretrain().validate()\n"


def tree(**edits):
    files = {"mimstudy/__init__.py": "", "mimstudy/config.py": CONFIG, "mimstudy/tasks.py": TASKS,
             "mimstudy/registry.py": REGISTRY}
    files.update({f"mimstudy/{name}.py": text for name, text in edits.items()})
    return CodeTree(files.get, package="mimstudy")


def reach(notebook=NOTEBOOK, **edits):
    return reached_statements(notebook, tree(**edits))


@pytest.mark.parametrize("old, new, same", [
    ('TASKS = ("pose", "depth")', 'TASKS = ("pose", "depth", "tracking")', True),  # another notebook's constant
    ("        _require(self.task in TASKS", "        _require(self.task not in TASKS", True),  # another class
    ("    steps: int = 2", "    steps: int = 3", False),  # the class the notebook builds
    ("LIMIT = 3", "LIMIT = 4", False),  # a constant it reads
    ("        raise ValueError", "        raise KeyError", False),  # a helper it calls
    ("import json", "import json\nimport os", False),  # a module-level import runs on import
    ("LIMIT = 3", "LIMIT = 3\nSEED = int('7')", False),  # an assignment that calls: runs on import
    ("LIMIT = 3", "LIMIT = 3\nprint('hi')", False),  # a statement with effects
    ("LIMIT = 3", "LIMIT = 3\ndef later(x=LIMIT):\n    return x", True),  # an unused function
    ("LIMIT = 3", "LIMIT = 3\ndef later(x=int('3')):\n    return x", False),  # ... whose default calls on import
    ("LIMIT = 3", "LIMIT = 3\ndef __getattr__(name):\n    return 1", False),  # answers any attribute
])
def test_an_edit_counts_only_where_the_notebook_reaches(old, new, same):
    assert old in CONFIG
    assert (reach() == reach(config=CONFIG.replace(old, new))) is same


def test_a_function_level_import_counts_only_when_its_function_is_reached():
    assert reach() == reach(tasks="def known(name):\n    return False\n")  # only Downstream.validate imports it
    downstream = "from mimstudy.config import Downstream\nDownstream().validate()\n"
    assert reach(downstream) != reach(downstream, tasks="def known(name):\n    return False\n")


def test_registered_definitions_and_whole_module_imports_always_count():
    # @register_model runs on import: a registry reaches it by name, no reference does
    assert reach("import json\n", registry="") == reach("import json\n")  # a module nobody imports
    assert reach() != reach(registry=REGISTRY.replace("return 1", "return 3"))
    # ``import mimstudy.registry`` may use any attribute: all of it counts, even the unused function
    assert reach() != reach(registry=REGISTRY.replace("return 2", "return 4"))
    only_config = "from mimstudy.config import Pretrain\n"
    assert reach(only_config) == reach(only_config, registry=REGISTRY.replace("return 2", "return 4"))


def test_what_the_analysis_does_not_follow_is_refused():
    with pytest.raises(Unanalysable, match="relative import"):
        reach(config=CONFIG + "\nfrom .tasks import known\n")
    with pytest.raises(Unanalysable, match="star import"):
        reach(config=CONFIG + "\nfrom mimstudy.tasks import *\n")


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def register_task(config_source: str) -> str:
    """The configuration module with one more downstream task name."""
    assert config_source.count("DOWNSTREAM_TASKS = (") == 1
    return config_source.replace("DOWNSTREAM_TASKS = (", 'DOWNSTREAM_TASKS = ("new_task", ')


@pytest.fixture
def repository(tmp_path):
    """The package and notebooks in a fresh git repository (one commit), to edit and re-check."""
    scratch = scratch_copy(tmp_path)
    git(scratch, "init", "-q")
    git(scratch, "add", "-A")
    git(scratch, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "code")
    return scratch, git(scratch, "rev-parse", "HEAD")


def test_registering_a_downstream_task_keeps_pretraining_current_but_not_downstream(repository):
    scratch, commit = repository
    recorded = {nb: code_hashes(nb, scratch) for nb in ("pretrain", "probes", "downstream")}
    config = scratch / "mimstudy" / "config.py"
    text = config.read_text()
    config.write_text(register_task(text))
    assert code_hashes("pretrain", scratch) != recorded["pretrain"]  # the file-level rule would stale it
    assert same_reach("pretrain", recorded["pretrain"], commit, scratch)
    assert same_reach("probes", recorded["probes"], commit, scratch)
    assert not same_reach("downstream", recorded["downstream"], commit, scratch)

    # an edit pre-training reaches (a default of its configuration)
    config.write_text(text.replace("class PretrainConfig(RunConfig):", "class PretrainConfig(RunConfig):\n    EXTRA = 1"))
    assert not same_reach("pretrain", recorded["pretrain"], commit, scratch)


def test_without_the_recorded_code_in_git_the_file_rule_decides(repository):
    scratch, commit = repository
    recorded = code_hashes("pretrain", scratch)
    config = scratch / "mimstudy" / "config.py"
    config.write_text(config.read_text() + "\nUNUSED_CONSTANT = 1\n")
    assert same_reach("pretrain", recorded, commit, scratch)
    assert not same_reach("pretrain", recorded, "unknown", scratch)
    assert not same_reach("pretrain", recorded, "0" * 40, scratch)  # a commit git does not have
    dirty = {**recorded, "mimstudy/config.py": "0" * 16}  # made from a tree that differed from its commit
    assert not same_reach("pretrain", dirty, commit, scratch)
    notebook = scratch / "notebooks" / "pretrain.ipynb"
    cells = json.loads(notebook.read_text())
    saving = next(i for i, c in enumerate(cells["cells"]) if "save_result(" in "".join(c["source"]))
    cells["cells"].insert(saving, {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                                   "source": ["x = 1\n"]})
    notebook.write_text(json.dumps(cells))
    assert "x = 1" in notebook_source(notebook)
    assert not same_reach("pretrain", recorded, commit, scratch)  # the notebook's own cells changed


def _append_cell(notebook, source):
    cells = json.loads(notebook.read_text())
    cells["cells"].append({"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                           "source": [source]})
    notebook.write_text(json.dumps(cells))


def test_what_cannot_change_a_number_keeps_results_current(repository):
    """Docstrings, comments, formatting, and the figures a notebook draws after saving its result."""
    scratch, commit = repository
    recorded = code_hashes("pretrain", scratch)
    config = scratch / "mimstudy" / "config.py"
    text = config.read_text()
    assert '    def required_runs(self) -> list[str]:\n        """' in text
    config.write_text(text.replace('    def required_runs(self) -> list[str]:\n        """',
                                   '    def required_runs(self) -> list[str]:\n        """Reworded. ')
                      .replace("class PretrainConfig(RunConfig):", "class PretrainConfig(RunConfig):  # a comment"))
    assert code_hashes("pretrain", scratch) != recorded  # the file's digest changed ...
    assert same_reach("pretrain", recorded, commit, scratch)  # ... but nothing a number depends on
    notebook = scratch / "notebooks" / "pretrain.ipynb"
    _append_cell(notebook, "from mimstudy.atomic import atomic_path\nprint(atomic_path, 'a figure after saving')\n")
    assert same_reach("pretrain", recorded, commit, scratch)
    # a definition's body still counts, docstring or not
    config.write_text(text.replace("class PretrainConfig(RunConfig):", "class PretrainConfig(RunConfig):\n    EXTRA = 1"))
    assert not same_reach("pretrain", recorded, commit, scratch)


def test_a_name_imported_for_figures_only_is_not_reached():
    notebook = "from mimstudy.config import Pretrain, Downstream\nPretrain().validate()\n"
    edit = CONFIG.replace('        _require(self.task in TASKS', '        _require(self.task not in TASKS')
    assert reach(notebook) == reach(notebook, config=edit)  # Downstream imported, never used
    assert reach(notebook + "Downstream().validate()\n") != reach(notebook + "Downstream().validate()\n", config=edit)


@pytest.mark.parametrize("old, new", [
    ("def _require(ok):\n", 'def _require(ok):\n    """Checks."""\n'),
    ('class Pretrain:\n', 'class Pretrain:\n    """A config."""\n'),
])
def test_docstrings_are_not_code(old, new):
    assert old in CONFIG
    assert reach() == reach(config=CONFIG.replace(old, new))


def test_a_notebook_counts_up_to_the_cell_that_saves_its_result():
    from mimstudy.provenance import result_code

    def notebook(*cells):
        return json.dumps({"cells": [{"cell_type": "code", "source": c} for c in cells]})

    assert result_code(notebook("a = 1", "save_result(a, c)", "plot(a)")) == "a = 1\nsave_result(a, c)"
    assert result_code(notebook("a = 1", "print(save_dataset(a, p, {}, 'x', 0))", "b")) == \
        "a = 1\nprint(save_dataset(a, p, {}, 'x', 0))"
    assert result_code(notebook("a = 1", "b = 2")) == "a = 1\nb = 2"  # saves nothing: all of it
    # statements reordered before saving are another computation
    assert reach("x = 1\ny = x\n") != reach("y = x\nx = 1\n")


@pytest.mark.slow
def test_the_runner_keeps_unreached_edits_current(repository, tmp_path, monkeypatch):
    scratch, commit = repository
    monkeypatch.setattr(mimstudy.provenance, "CODE_ROOT", scratch)
    monkeypatch.setenv(mimstudy.provenance.GIT_COMMIT_VARIABLE, commit)  # results name the scratch commit
    steps = plan("ci", results_dir=str(tmp_path / "res"), runs_dir=str(tmp_path / "runs"))
    fake_results(steps)
    assert rerun_reasons(steps) == {}
    config = scratch / "mimstudy" / "config.py"
    config.write_text(register_task(config.read_text()))
    reasons = rerun_reasons(steps)
    assert reasons and {name.split("/")[0] for name in reasons} == {"downstream"}
    assert set(reasons.values()) == {"code changed: mimstudy/config.py"}
    os.utime(config)  # a second look gives the same answer
    assert rerun_reasons(steps) == reasons


def test_the_real_notebooks_are_analysed():
    for notebook in ("pretrain", "evaluate", "probes", "trajectory", "paper_probes", "downstream"):
        statements = reached_statements(notebook_source(ROOT / "notebooks" / f"{notebook}.ipynb"),
                                        CodeTree(lambda p: (ROOT / p).read_text() if (ROOT / p).is_file() else None))
        files = {path for path, _ in statements}
        assert files <= set(code_hashes(notebook)) | {"<notebook>"}  # never beyond the file-level closure
        assert ("mimstudy/downstream/backbone.py" in files) is (notebook == "downstream")
