"""The book builds warning-free (-W), from the committed results and from a fresh ci run."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JUPYTER_BOOK = Path(sys.executable).with_name("jupyter-book")


def build(out: Path, **env) -> str:
    run = subprocess.run(
        [str(JUPYTER_BOOK), "build", str(ROOT), "--warningiserror", "--keep-going", "--path-output", str(out)],
        capture_output=True, text=True, timeout=900, env={**os.environ, **env},
    )
    logs = "".join(p.read_text() for p in out.glob("_build/html/reports/**/*.log"))
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:] + logs[-4000:]
    return (out / "_build" / "html" / "book" / "attention_distance.html").read_text()


def verdict_of(page: str) -> str:
    return verdicts_of(page)[0]


def verdicts_of(page: str) -> list[str]:
    """The presets named by the page's verdicts, in order."""
    return re.findall(r"Verdict on the <code[^>]*><span class=\"pre\">(\w+)</span></code> results", page)


def headings_of(page: str) -> list[str]:
    """The presets whose section headings (``preset_heading``) the page shows, in order."""
    return re.findall(r"The <code[^>]*><span class=\"pre\">(\w+)</span></code> preset", page)


@pytest.mark.skipif(not (ROOT / "results" / "quick" / "probes").is_dir(), reason="no committed quick results")
def test_book_builds_from_committed_results(tmp_path):
    page = build(tmp_path, MIMSTUDY_RESULTS_DIR=str(ROOT / "results"), MIMSTUDY_BOOK_PRESET="quick,gpu")
    shown = ["quick"] + (["gpu"] if (ROOT / "results" / "gpu" / "probes").is_dir() else [])
    assert headings_of(page) == shown and verdicts_of(page) == shown
    assert "Traceback" not in page
    # one training seed per model in the committed presets: every verdict is undetermined, with the reason
    assert re.search(r"<strong>undetermined\.</strong>", page) and "only 1 training seed" in page
    scorecard = (tmp_path / "_build" / "html" / "book" / "scorecard.html").read_text()
    assert "not run" in scorecard and "undetermined" in scorecard and "attention_distance.html" in scorecard
    assert "<table" in page and "data:image/png" in page or "<img" in page


def test_book_builds_from_a_fresh_ci_run(tmp_path, ci_results):
    results, _ = ci_results
    # gpu has no results in this folder: the book leaves it out
    page = build(tmp_path, MIMSTUDY_RESULTS_DIR=results, MIMSTUDY_BOOK_PRESET="ci,gpu")
    assert verdict_of(page) == "ci" and headings_of(page) == ["ci"]
