"""The suite's own collection rule (tests/conftest.py, ``pytest_collection_modifyitems``): the tests that
read the ci run or its book are marked slow, run first, and live in one module."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from .conftest import CI_PRESET_MODULE, pytest_collection_modifyitems


def item(module: str, name: str, *fixtures: str) -> SimpleNamespace:
    marks = []
    return SimpleNamespace(path=Path("tests") / module, nodeid=f"tests/{module}::{name}", fixturenames=list(fixtures),
                           marks=marks, add_marker=lambda mark: marks.append(mark.name))


def test_the_ci_module_runs_first_and_its_readers_are_slow():
    items = [item("test_a.py", "one", "tmp_path"), item(CI_PRESET_MODULE, "book", "committed_book"),
             item("test_b.py", "two"), item(CI_PRESET_MODULE, "run", "ci_results", "tmp_path")]
    pytest_collection_modifyitems(None, items)
    assert [i.nodeid.split("::")[1] for i in items] == ["book", "run", "one", "two"]  # stable within each side
    assert [i.marks for i in items] == [["slow"], ["slow"], [], []]


@pytest.mark.parametrize("fixture", ["ci_results", "committed_book"])
def test_a_reader_of_the_ci_run_outside_its_module_is_refused(fixture):
    items = [item(CI_PRESET_MODULE, "run", "ci_results"), item("test_book.py", "stray", fixture)]
    with pytest.raises(pytest.UsageError, match=rf"test_book.py::stray asks for .* move it to tests/{CI_PRESET_MODULE}"):
        pytest_collection_modifyitems(None, items)
