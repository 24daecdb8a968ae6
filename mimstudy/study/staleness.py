"""Is a stored result still what its run would make today? Its parameters and its code decide.

A result is *current* when it was made with the parameters its preset gives it now (where files go
aside) and with the code it depends on unchanged: its notebook's code cells and every ``mimstudy``
file they import, transitively (:func:`mimstudy.provenance.code_hashes`, recorded in the result's
provenance when it is saved), except where every edit since lies in definitions its notebook never
reaches (:func:`mimstudy.study.reachable_code.same_reach`, checked against the code recorded at the
result's git commit). :func:`result_change` says, in words, why a result is not current; the runner
adds the reasons that come from other runs (a pre-training re-run or re-made).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

from mimstudy.config import PretrainConfig, RunConfig
from mimstudy.models.checkpoints.weights import file_sha256, weights_file
from mimstudy import provenance
from mimstudy.atomic import atomic_path
from mimstudy.provenance import code_changes, code_hashes
from mimstudy.study.reachable_code import same_reach
from mimstudy.results import code_in, parameters_in

# Where a run writes, not what it computes: results made elsewhere (another --runs-dir) stay current.
LOCATION_PARAMETERS = frozenset({"results_dir", "runs_dir"})

MISSING = "missing"
CODE_NOT_RECORDED = "code not recorded (made before code hashing)"
SHOWN_FILES = 3  # a reason names at most this many changed files


class CodeVersions:
    """Today's :func:`~mimstudy.provenance.code_hashes` per notebook, computed once each."""

    def __init__(self, root: str | Path | None = None):
        self.root = root  # the repository (default: the one holding this package)
        self._hashes: dict[str, dict[str, str]] = {}
        self._reach: dict[tuple[str, str, str], bool] = {}

    def __call__(self, notebook: str) -> dict[str, str]:
        if notebook not in self._hashes:
            self._hashes[notebook] = code_hashes(notebook, self.root)
        return self._hashes[notebook]

    def same_reach(self, notebook: str, recorded: dict[str, str], commit: str) -> bool:
        """Does ``notebook`` reach the same code today as in ``recorded`` (made at ``commit``)? Computed
        once each, and kept on disk (:func:`reach_cache`) for other processes: every page of the book
        asks it of every stored result."""
        key = (notebook, commit, json.dumps(recorded, sort_keys=True))
        if key not in self._reach:
            root = Path(self.root or provenance.CODE_ROOT).resolve()
            # the answer depends only on these: the old code (commit + digests), today's code (digests), the repository
            digest = hashlib.sha256(json.dumps([notebook, commit, recorded, self(notebook), str(root)],
                                               sort_keys=True).encode()).hexdigest()
            folder = reach_cache()
            cached = folder / f"{digest}.json" if folder else None
            if cached is not None and cached.is_file():
                self._reach[key] = bool(json.loads(cached.read_text()))
            else:
                self._reach[key] = same_reach(notebook, recorded, commit, root)
                if cached is not None:
                    try:
                        cached.parent.mkdir(parents=True, exist_ok=True)
                        with atomic_path(cached) as tmp:
                            Path(tmp).write_text(json.dumps(self._reach[key]))
                    except OSError:
                        pass  # a read-only cache folder only costs time
        return self._reach[key]


REACH_CACHE = "MIMSTUDY_REACH_CACHE"  # a folder for the answers of the reach analysis; "off": none


def reach_cache() -> Path | None:
    """Where :meth:`CodeVersions.same_reach` keeps its answers: ``$MIMSTUDY_REACH_CACHE``, by default
    ``<temp dir>/mimstudy-reach-cache``; ``None`` when set to ``off``. An answer is filed under a digest
    of everything it depends on, so an entry never goes stale."""
    value = os.environ.get(REACH_CACHE, "").strip()
    if value.lower() == "off":
        return None
    return Path(value) if value else Path(tempfile.gettempdir()) / "mimstudy-reach-cache"


def _value(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parameter_change(config: RunConfig, stored: dict) -> str | None:
    """``"parameters changed: lr 0.001 -> 0.002, ..."`` or ``None``."""
    changed = config.differences(stored, ignore=LOCATION_PARAMETERS)
    if not changed:
        return None
    current = config.to_dict()
    return "parameters changed: " + ", ".join(
        f"{name} {_value(stored[name]) if name in stored else '(not recorded)'} -> "
        f"{_value(current[name]) if name in current else '(no longer a parameter)'}" for name in sorted(changed))


def code_change(recorded: dict[str, str] | None, current: dict[str, str],
                same_reach: Callable[[], bool] | None = None) -> str | None:
    """``"code changed: mimstudy/probes/attention.py"``, :data:`CODE_NOT_RECORDED`, or ``None``.

    ``current`` empty means today's code cannot be hashed (a package installed without its
    notebooks): the recorded code then cannot be checked, and counts as unchanged. ``same_reach``:
    asked when files differ, whether the run still reaches the same definitions (then unchanged)."""
    if recorded is None:
        return CODE_NOT_RECORDED
    if not current:
        return None
    files = code_changes(recorded, current)
    if not files or (same_reach is not None and same_reach()):
        return None
    more = f" and {len(files) - SHOWN_FILES} more file(s)" if len(files) > SHOWN_FILES else ""
    return "code changed: " + ", ".join(files[:SHOWN_FILES]) + more


WEIGHTS_NOT_RECORDED = "final weights not recorded (made before weights were results)"


def weights_change(config: PretrainConfig, attrs: dict) -> str | None:
    """Why a pre-training result's final weights are not those it recorded (missing, not recorded,
    other bytes), or ``None``: every later step reads them (:mod:`mimstudy.models.checkpoints.weights`)."""
    recorded = attrs.get("weights_sha256")
    if not recorded:
        return WEIGHTS_NOT_RECORDED
    path = weights_file(config.results_dir, config.preset, config.run_id)
    if not path.is_file():
        return f"final weights missing: {path}"
    if file_sha256(path) != recorded:
        return f"final weights differ from those recorded: {path}"
    return None


def result_change(config: RunConfig, attrs: dict | None, code: CodeVersions) -> str | None:
    """Why the result stored with ``attrs`` (``None``: no readable result) is not current for
    ``config`` under today's code, or ``None`` when it is current."""
    if attrs is None:
        return MISSING
    stored = parameters_in(attrs)
    if stored is None:
        return "no parameters recorded"
    recorded = code_in(attrs)
    return parameter_change(config, stored) or code_change(
        recorded, code(config.notebook),
        lambda: code.same_reach(config.notebook, recorded, str(attrs.get("git_commit", "")))) or (
        weights_change(config, attrs) if isinstance(config, PretrainConfig) else None)
