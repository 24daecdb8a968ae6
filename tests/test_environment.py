"""pyproject.toml and environment.yml must list the same packages with the same version ranges."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def normalise(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+(?:\[[^\]]+\])?)\s*(.*)$", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert dict(map(normalise, project)) == dict(map(normalise, pip_section))


def test_readme_commands_exist_in_makefile():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("study", "test"):
        assert f"make {target}" in readme
        assert re.search(rf"^{target}:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_is_short_and_true():
    """A newcomer reads it whole: at most ~4 KB, and what it names exists as it says."""
    from mimstudy.book.stored import DEFAULT_BOOK_PRESETS
    from mimstudy.study.runner import PRESET_DIR

    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 4200
    makefile = (ROOT / "Makefile").read_text()
    for target in re.findall(r"`make ([\w-]+)", readme):
        assert re.search(rf"^{target}:", makefile, re.M), target
    assert re.search(r"^PRESET \?= quick$", makefile, re.M) and "default preset (quick" in readme
    presets = re.findall(r"^\| `(\w+)` \|", readme, re.M)
    assert presets and all((PRESET_DIR / f"{p}.yaml").is_file() for p in presets)
    from mimstudy.study.cli import main

    for command in set(re.findall(r"`mimstudy (\w+)", readme)):
        try:
            main([command, "--help"])
        except SystemExit as done:
            assert done.code == 0, command
    assert (ROOT / "book" / "running.md").is_file() and "book/running" in (ROOT / "_toc.yml").read_text()
    assert "MIMSTUDY_BOOK_PRESET=mine make book              # render another preset's results (default: " \
           f"{DEFAULT_BOOK_PRESETS})" in (ROOT / "book" / "running.md").read_text()
