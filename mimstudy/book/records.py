"""What the book says about where a figure's results came from, and whether they are still current.

Under each figure: one line (preset, seeds, commit, hardware, dates), a warning line when some of
its results are stale (made with other parameters or other code than the preset and the package
give today, :mod:`mimstudy.study.staleness`), and the full record of every run behind a collapsible
``<details>`` block.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import xarray as xr

from mimstudy.config import ConfigError


def run_records(ds: xr.Dataset) -> dict[str, dict]:
    """``{run id: its stored attributes}`` from the ``provenance`` coord of concatenated runs."""
    return {str(m): json.loads(str(ds["provenance"].sel(model=m).item())) for m in ds["model"].values}


@lru_cache(maxsize=None)
def _preset_currency(preset: str, results_dir: str) -> tuple[frozenset[str], dict[str, str]]:
    """The step names of ``preset`` and the reasons its stale results are stale (computed once)."""
    from mimstudy.study.runner import currency  # imports torch: only when a page asks

    # stale results only: the checkpoints needed to re-make them are no concern of the book
    return currency(preset, results_dir)


def stale_reasons(ds: xr.Dataset, notebook: str, results_dir: str | Path) -> dict[str, str]:
    """``{run id: why it is stale}`` for the runs of ``ds`` (results of ``notebook`` under
    ``results_dir``) that are not current; current runs are left out."""
    reasons = {}
    for model, attrs in run_records(ds).items():
        preset = str(attrs.get("preset", ""))
        try:
            names, stale = _preset_currency(preset, str(results_dir))
        except ConfigError:
            reasons[model] = f"its preset {preset!r} has no file in presets/ to check it against"
            continue
        name = f"{notebook}/{model}"
        if name not in names:
            reasons[model] = f"no longer a run of the {preset!r} preset"
        elif name in stale:
            reasons[model] = stale[name]
    return reasons


def _joined(values, code: bool = False) -> str:
    unique = list(dict.fromkeys(str(v) for v in values))
    return ", ".join(f"`{v}`" if code else v for v in unique)


def provenance_line(records: dict[str, dict]) -> str:
    """One line for all runs of a figure: preset, seeds, commit(s), hardware, date range."""
    attrs = list(records.values())
    commits = [str(a.get("git_commit", "?"))[:10] + (" (uncommitted changes)" if a.get("git_dirty") else "")
               for a in attrs]
    seeds = sorted({int(a["seed"]) for a in attrs if "seed" in a})
    dates = sorted(str(a.get("created", "?"))[:10] for a in attrs)
    span = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    return (f"**Provenance.** {len(attrs)} run{'s' if len(attrs) != 1 else ''} of preset "
            f"{_joined((a.get('preset', '?') for a in attrs), code=True)}; "
            f"seed{'s' if len(seeds) != 1 else ''} {', '.join(map(str, seeds)) or '?'}; "
            f"commit {_joined(commits, code=True)}; {_joined(a.get('hardware', '?') for a in attrs)}; made {span}.")


def stale_line(reasons: dict[str, str], total: int) -> str:
    """A warning naming the stale runs of a figure and why ('' when every run is current)."""
    if not reasons:
        return ""
    by_reason: dict[str, list[str]] = {}
    for model, reason in reasons.items():
        by_reason.setdefault(reason, []).append(f"`{model}`")
    parts = "; ".join(f"{', '.join(models)}: {reason}" for reason, models in by_reason.items())
    every = "all" if len(reasons) == total else f"{len(reasons)} of {total}"
    return (f"**Stale results** ({every} runs): they are not what today's code and preset would make, "
            f"so this figure may not describe the current study. {parts}. "
            "`mimstudy plan` lists them; `mimstudy run` re-makes them.")


def record_table(records: dict[str, dict], reasons: dict[str, str]) -> str:
    """A Markdown table: one row per run, every provenance field the datasets carry."""
    rows = ["| run | preset | seed | commit | made | hardware | torch | timm | python | code digest | current? |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for model, a in records.items():
        versions = json.loads(a.get("package_versions", "{}") or "{}")
        commit = f"`{str(a.get('git_commit', '?'))[:10]}`" + (" (dirty)" if a.get("git_dirty") else "")
        note = f" ({a['provenance_note']})" if a.get("provenance_note") else ""
        rows.append("| " + " | ".join([
            f"`{model}`", str(a.get("preset", "?")), str(a.get("seed", "?")), commit, str(a.get("created", "?")),
            str(a.get("hardware", "?")) + note, versions.get("torch", "?"), versions.get("timm", "?"),
            str(a.get("python", "?")), f"`{a['code_digest']}`" if a.get("code_digest") else "not recorded",
            f"stale: {reasons[model]}" if model in reasons else "yes",
        ]).replace("\n", " ") + " |")
    return "\n".join(rows)


def provenance_block(ds: xr.Dataset, notebook: str, results_dir: str | Path, label: str = "") -> str:
    """Markdown for under a figure: the one-line provenance, the stale warning (if any) and the full
    per-run record in a collapsed ``<details>`` block. ``label`` names the results (e.g. 'Pre-training')."""
    records = run_records(ds)
    reasons = stale_reasons(ds, notebook, results_dir)
    line = provenance_line(records)
    if label:
        line = line.replace("**Provenance.**", f"**Provenance ({label}).**", 1)
    parts = [line]
    if reasons:
        parts.append(stale_line(reasons, len(records)))
    parts.append(f"<details><summary>Full record of the {len(records)} {notebook} run(s)</summary>\n\n"
                 + record_table(records, reasons) + "\n\n</details>")
    return "\n\n".join(parts)
