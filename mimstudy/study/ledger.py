"""The campaign's ledger: a long preset's pieces, what each costs, and whether it is committed and current.

A preset may list ``pieces:`` (in the order they are to be made), each a ``mimstudy run --runs``
selection that fits one working session::

    pieces:
      - {name: ViT seed 0, runs: "vit_*-s0", estimate_min: 40}

Every ``mimstudy run --runs ...`` that executes something appends one line to the preset's run log,
``<results_dir>/<preset>/run_log.csv`` (committed with the results it made): the selection, the wall
time, the parallel jobs, the load at its end, the processor, its fp32 matmul rate on one thread and
the commit. :func:`ledger` joins the two with the stored results: per piece, its measured wall time
(the latest logged run of exactly its selection) or, until it runs, its estimate, and how many of its
steps are stored and current (:func:`mimstudy.study.runner.rerun_reasons`).
"""

from __future__ import annotations

import csv
import fnmatch
import datetime as _dt
import io
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from mimstudy.atomic import atomic_path
from mimstudy.config import ConfigError
from mimstudy.numerics import cpu_model, matmul_gflops
from mimstudy.provenance import git_commit
from mimstudy.study.runner import plan, preset_file, rerun_reasons, select_runs

LOG_NAME = "run_log.csv"
LOG_FIELDS = ("runs", "finished", "wall_s", "jobs", "steps", "load_1min", "load_15min", "cpu_model",
              "matmul_gflops_1thread", "numerics", "git_commit")
NESTED = "MIMSTUDY_NESTED_RUN"  # set for the processes a parallel run starts: only the outer run logs


@dataclass
class Piece:
    name: str
    runs: str  # the --runs selection, comma-separated patterns
    estimate_min: float | None = None  # until measured; None: pilot first
    note: str = ""

    @property
    def patterns(self) -> list[str]:
        return [r.strip() for r in self.runs.split(",") if r.strip()]


@dataclass
class LedgerRow:
    piece: Piece
    steps: int
    stored: int
    current: int
    wall_min: float | None  # measured
    logged: dict | None  # the run log's line

    @property
    def status(self) -> str:
        if self.current == self.steps:
            return "committed, current"
        if self.stored == 0:
            return "not made"
        return f"{self.current} of {self.steps} steps current" + (
            f" ({self.steps - self.stored} not made)" if self.stored < self.steps else "")


def preset_pieces(preset: str | Path) -> list[Piece]:
    """The ``pieces:`` of a preset file, in order (``[]`` when it lists none)."""
    path = preset_file(preset)
    spec = yaml.safe_load(path.read_text()) or {}
    pieces = []
    for i, item in enumerate(spec.get("pieces") or []):
        if not isinstance(item, dict) or not {"name", "runs"} <= set(item) or set(item) - {"name", "runs", "estimate_min", "note"}:
            raise ConfigError(f"{path}: piece {i + 1} must be a mapping of name, runs and optionally estimate_min "
                              f"and note; got {item!r}")
        pieces.append(Piece(str(item["name"]), str(item["runs"]), item.get("estimate_min"), str(item.get("note", ""))))
    return pieces


def log_path(results_dir: str | Path, preset_name: str) -> Path:
    return Path(results_dir) / preset_name / LOG_NAME


def read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def append_log(results_dir: str | Path, preset_name: str, runs: str, wall_s: float, jobs: int, steps: int) -> Path:
    """Append one run to the preset's run log (atomically: the whole file is rewritten)."""
    path = log_path(results_dir, preset_name)
    rows = read_log(path)
    load1, _, load15 = os.getloadavg()
    commit, dirty = git_commit()
    rows.append({"runs": runs, "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                 "wall_s": f"{wall_s:.0f}", "jobs": str(jobs), "steps": str(steps), "load_1min": f"{load1:.2f}",
                 "load_15min": f"{load15:.2f}", "cpu_model": cpu_model(),
                 "matmul_gflops_1thread": f"{matmul_gflops(threads=1):.1f}",
                 "numerics": os.environ.get("ATEN_CPU_CAPABILITY", "native"),
                 "git_commit": commit + ("+dirty" if dirty else "")})
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=LOG_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: row.get(k, "") for k in LOG_FIELDS} for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text.getvalue())
    return path


def ledger(preset: str | Path, results_dir: str = "results") -> list[LedgerRow]:
    """Each piece of ``preset``: its steps, how many are stored and current, its measured wall time."""
    steps = plan(preset, results_dir)
    name = steps[0].config.preset if steps else Path(preset).stem
    log = read_log(log_path(results_dir, name))
    reasons = rerun_reasons(steps, checkpoints=False)
    rows = []
    for piece in preset_pieces(preset):
        own = {s.config.run_id for s in select_runs(steps, piece.patterns)
               if any(fnmatch.fnmatchcase(s.config.run_id, p) for p in piece.patterns)}
        chosen = [s for s in steps if s.config.run_id in own]  # not the producers it may re-make
        stored = sum(s.result.is_file() for s in chosen)
        current = sum(s.name not in reasons for s in chosen)
        logged = next((row for row in reversed(log) if row["runs"].replace(" ", "") == piece.runs.replace(" ", "")), None)
        wall = float(logged["wall_s"]) / 60 if logged else None
        rows.append(LedgerRow(piece, len(chosen), stored, current, wall, logged))
    return rows


def ledger_markdown(rows: list[LedgerRow], preset_name: str) -> str:
    """The ledger as a Markdown table (the Compute page, ``mimstudy ledger``)."""
    lines = ["| # | piece | `--runs` | wall time | status |", "|---|---|---|---|---|"]
    for i, row in enumerate(rows, 1):
        if row.wall_min is not None:
            log = row.logged
            wall = (f"**{row.wall_min:.1f} min** measured ({log['jobs']} jobs, load {log['load_15min']}, "
                    f"{log['matmul_gflops_1thread']} GFLOP/s per thread, {log['cpu_model']})")
        elif row.piece.estimate_min is not None:
            wall = f"~{row.piece.estimate_min:g} min estimated"
        else:
            wall = "unknown: pilot first"
        note = f" — {row.piece.note}" if row.piece.note else ""
        lines.append(f"| {i} | {row.piece.name}{note} | `{row.piece.runs}` | {wall} | {row.status} |")
    return (f"Make each piece with `mimstudy run --preset {preset_name} --jobs 2 --runs '<runs>'`.\n\n"
            + "\n".join(lines) + "\n\n" + totals_line(rows))


def totals_line(rows: list[LedgerRow]) -> str:
    """What the whole preset costs: measured, estimated for the rest, and how many pieces are unknown."""
    done = [r for r in rows if r.status == "committed, current"]
    measured = sum(r.wall_min for r in rows if r.wall_min is not None)
    left = [r for r in rows if r.status != "committed, current"]
    estimated = sum(r.piece.estimate_min for r in left if r.wall_min is None and r.piece.estimate_min is not None)
    unknown = sum(r.wall_min is None and r.piece.estimate_min is None for r in left)
    return (f"**Total**: {len(done)} of {len(rows)} pieces committed and current; {measured:.0f} min measured, "
            f"~{estimated:.0f} min estimated for the {len(left)} left"
            + (f", of which {unknown} not yet estimated (their pilot comes first)" if unknown else "") + ".")
