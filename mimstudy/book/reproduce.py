"""The commands that re-make a chapter's results, generated from its preset (never typed).

:func:`reproduce_commands` gives the ``mimstudy run --preset P --runs ...`` line for the runs a
chapter shows and, step by step, the papermill commands that line executes (the notebook, where the
executed copy goes, and every parameter that differs from the notebook's default).
"""

from __future__ import annotations

import json
import shlex
from typing import Callable

from mimstudy.config import ConfigError, PretrainConfig, RunConfig

ALWAYS = ("preset", "run_id")  # named on every papermill line, even when equal to the default
LOCATIONS = ("results_dir", "runs_dir")  # the runner's defaults: the same folders as papermill's


def _read_as_other_type(text: str) -> bool:
    """Whether papermill's ``-p`` would turn this string into a bool, None or a number."""
    if text in ("True", "False", "None"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def _papermill_parameter(name: str, value) -> list[str]:
    """``-p name value``; ``-r`` for a string papermill would read as another type; ``-y`` (YAML) for
    a list or mapping."""
    if isinstance(value, str):
        return ["-r" if _read_as_other_type(value) else "-p", name, value]
    if isinstance(value, (list, tuple, dict)):
        return ["-y", json.dumps({name: value})]  # JSON is YAML
    return ["-p", name, str(value)]


def papermill_command(config: RunConfig, notebook_dir: str = "notebooks") -> str:
    """The papermill line that executes ``config``'s notebook as the runner does (from the repository
    root): parameters equal to the notebook's defaults are left out."""
    from mimstudy.results import result_path

    defaults = type(config)().to_dict()
    values = config.to_dict()
    words = ["papermill", f"{notebook_dir}/{config.notebook}.ipynb", result_path(config).with_suffix(".ipynb").as_posix()]
    for name, value in values.items():
        if name in ALWAYS or (value != defaults.get(name) and name not in LOCATIONS):
            words += _papermill_parameter(name, value)
    return shlex.join(words)


def chapter_runs(preset: str, notebook: str, keep: Callable[[RunConfig, str], bool] | None = None) -> list[str]:
    """Run ids of ``preset``'s ``notebook`` steps that a chapter shows: those for which
    ``keep(config, arch)`` holds (``arch``: the backbone of the run's pre-training, or the config's
    ``model_name``), in the preset's order."""
    from mimstudy.study.runner import plan

    steps = plan(preset)
    archs = {s.config.run_id: s.config.arch for s in steps if isinstance(s.config, PretrainConfig)}
    chosen = []
    for step in steps:
        if step.notebook != notebook:
            continue
        arch = archs.get(step.config.run_id, getattr(step.config, "model_name", ""))
        if keep is None or keep(step.config, arch):
            chosen.append(step.config.run_id)
    return chosen


def reproduce_commands(preset: str, run_ids: list[str]) -> tuple[str, list[str]]:
    """``(mimstudy line, papermill lines)`` that re-make the results of ``run_ids`` of ``preset``:
    every notebook of those runs and the pre-training they read, in execution order."""
    from mimstudy.study.runner import plan, select_runs

    if not run_ids:
        raise ConfigError(f"no runs of preset {preset!r} to reproduce")
    steps = select_runs(plan(preset), list(run_ids))
    line = shlex.join(["mimstudy", "run", "--preset", preset, "--runs", ",".join(run_ids)])
    return line, [papermill_command(s.config) for s in steps]


def reproduce_markdown(presets: list[str], notebook: str,
                       keep: Callable[[RunConfig, str], bool] | None = None) -> str:
    """A chapter's closing section: for each preset, the ``mimstudy run`` line for the runs the chapter
    shows (:func:`chapter_runs`) and the papermill lines it executes, collapsed."""
    parts = ["## Re-make these results",
             "From the repository root, with the project's environment (`.venv/bin/` before each command "
             "after `make install`). `mimstudy run` executes only the steps whose results are missing or "
             "stale (`mimstudy plan` says why; add `--force` to re-make current ones too); the papermill "
             "lines are the same steps one by one, in order."]
    for preset in presets:
        try:
            runs = chapter_runs(preset, notebook, keep)
        except ConfigError as err:
            parts.append(f"The `{preset}` preset cannot be read: {err}")
            continue
        if not runs:
            parts.append(f"The `{preset}` preset has no run of this chapter.")
            continue
        line, papermill = reproduce_commands(preset, runs)
        parts.append(f"**`{preset}` preset:**\n\n```bash\n{line}\n```")
        parts.append(f"<details><summary>The same as {len(papermill)} papermill commands</summary>\n\n"
                     "```bash\n" + "\n".join(papermill) + "\n```\n\n</details>")
    return "\n\n".join(parts)
