"""The study's pre-registration: the verdict rules fixed before seeds 1 and 2 of the `cpu` preset are judged.

The rules are committed, and that commit is tagged :data:`TAG`. The scorecard states the tagged commit
and lists, from git, every commit after it that changed a file of :data:`RULE_FILES` (the verdict rules,
the floors, the gates, the claims' checks and the evidence they read), so a reader sees what was decided
before the evidence and what was changed after it. A later change is allowed; it shows.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

TAG = "preregistration"
RULE_FILES = (  # relative to the repository root; a folder stands for every file in it
    "mimstudy/book/claims/",  # verdict rules, floors, gates, statistics, reductions, evidence, registry, claim families
    "mimstudy/book/stored.py",  # how stored results are read (a run stored twice, ...)
)
PREREGISTRATION = (
    "A check holds when its whole 95% interval lies beyond its floor and beyond its random-init control, fails when "
    "the whole interval lies on the wrong side of either, and is inconclusive otherwise; intervals are t intervals "
    "over at least 3 independent training seeds.",
    "A claim is supported when every check holds, partly supported when some hold and some fail, not supported when "
    "checks fail and none holds, and undetermined when a check is inconclusive and none fails (with roughly how "
    "many seeds would decide it), or when a blocker applies.",
    "Blockers: fewer than 3 training seeds; seeds that are not independent (identical stored arrays, or one run "
    "stored twice); a stale result; a quality gate that fails or is unknown; a missing value or control.",
    "Quality gates test whether a model learned its own objective, against a noise band (the binomial band over "
    "the evaluated images and 1.96 x the spread over seeds): inside the band, unknown.",
    "Floors come from the paper's numbers (CKA) or a stated construction on the model's own attention grid "
    "(mimstudy/book/claims/floors.py), shown with each check; each check names its null; a random-init control that is "
    "zero by construction is reported as such.",
)


def _git(*args: str, root: Path) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


RECORD = Path("book") / "preregistration.txt"  # the pre-registered commit, for clones that carry no tags


def tagged_commit(root: Path, tag: str = TAG) -> tuple[str, str] | None:
    """``(commit, date)`` of ``tag`` in the repository at ``root`` or, where the tag did not travel (a
    clone without tags), of the commit :data:`RECORD` names; ``None`` when neither is there."""
    found = _git("log", "-1", "--format=%H%x09%ad", "--date=short", f"refs/tags/{tag}", "--", root=root)
    record = root / RECORD
    if not found and tag == TAG and record.is_file() and record.read_text().split():
        found = _git("log", "-1", "--format=%H%x09%ad", "--date=short", record.read_text().split()[0], "--", root=root)
    if not found:
        return None
    commit, date = found.split("\t")
    return commit, date


def changes_since(root: Path, tag: str = TAG, files: tuple[str, ...] = RULE_FILES) -> list[tuple[str, str, str, str]] | None:
    """``(commit, date, subject, files)`` of every commit after ``tag`` that touched ``files``, newest first;
    ``None`` when the tag (or git) is not there."""
    tagged = tagged_commit(root, tag)
    if tagged is None:
        return None
    log = _git("log", "--format=%x00%h%x09%ad%x09%s", "--date=short", "--name-only", f"{tagged[0]}..HEAD", "--", *files,
               root=root)
    if log is None:
        return None
    found = []
    for entry in filter(None, log.split("\x00")):
        head, *names = entry.strip().split("\n")
        commit, date, subject = head.split("\t", 2)
        touched = ", ".join(f"`{n}`" for n in map(str.strip, names) if n and n.startswith(files))
        found.append((commit, date, subject, touched))
    return found


def _short(subject: str, most: int = 240) -> str:
    subject = subject.replace("|", "/")
    return subject if len(subject) <= most else subject[: most - 1] + "…"


def preregistration_markdown(root: Path) -> str:
    """The scorecard's section: the pre-registered rules, the tagged commit (or that there is none yet) and
    every change to a rule file since."""
    rules = "\n".join(f"- {rule}" for rule in PREREGISTRATION)
    files = ", ".join(f"`{f}`" for f in RULE_FILES)
    tagged = tagged_commit(root)
    if tagged is None:
        return (f"The rules:\n\n{rules}\n\nThe git tag `{TAG}` that records their commit is not "
                "in this repository yet (or git is not available here), so no commit can be named as the "
                "pre-registration and no later change to the rules can be listed: read every verdict below as "
                f"judged by the rules of this commit. The rule files: {files}.")
    commit, date = tagged
    changes = changes_since(root) or []
    lines = [f"The rules below were committed and tagged `{TAG}` at `{commit[:10]}` ({date}), "
             "before seeds 1 and 2 of the `cpu` preset were judged:", "", rules, ""]
    if not changes:
        lines.append(f"No commit since has changed a rule file ({files}).")
        return "\n".join(lines)
    lines += [f"**Changed after the pre-registration** ({len(changes)} commit{'s' if len(changes) != 1 else ''} "
              f"touching the rule files):", "", "| commit | date | files | change |", "|---|---|---|---|"]
    lines += [f"| `{c}` | {d} | {files_} | {_short(s)} |" for c, d, s, files_ in changes]
    return "\n".join(lines)
