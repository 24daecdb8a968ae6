"""The book builds warning-free (-W), from the committed results and from a fresh ci run."""

import re
from pathlib import Path

from .conftest import BOOK_PRESETS, real_data_available

ROOT = Path(__file__).resolve().parents[1]


def verdicts_of(page: str) -> list[str]:
    """The presets named by the page's verdicts, in order."""
    return re.findall(r"Verdict on the <code[^>]*><span class=\"pre\">(\w+)</span></code> results", page)


def headings_of(page: str) -> list[str]:
    """The presets whose section headings (``preset_heading``) the page shows, in order."""
    return re.findall(r"The <code[^>]*><span class=\"pre\">(\w+)</span></code> preset", page)


def test_book_builds_from_committed_results(committed_book):
    page = (committed_book / "book" / "attention_distance.html").read_text()
    shown = [p for p in BOOK_PRESETS if (ROOT / "results" / p / "probes").is_dir()]
    fresh = ["ci"] if real_data_available() else []  # the fresh ci run, built into the same book
    assert headings_of(page) == shown + fresh and verdicts_of(page) == shown + fresh
    assert "Traceback" not in page
    # wide tables scroll inside the column (book/_ext/static/tables.css), never clipped at its edge
    assert "_static/tables.css" in page and (committed_book / "_static" / "tables.css").is_file()
    # one training seed per model in the committed presets: every verdict is undetermined, with the reason
    assert re.search(r"<strong>undetermined\.</strong>", page) and "only 1 training seed" in page
    scorecard = (committed_book / "book" / "scorecard.html").read_text()
    assert "not run" in scorecard and "undetermined" in scorecard and "attention_distance.html" in scorecard
    assert "<table" in page and "data:image/png" in page or "<img" in page
    # compact provenance (one line, the record collapsed) and the commands that re-make the chapter
    assert page.count("<strong>Provenance.</strong>") == len(shown + fresh) and page.count("<details>") >= len(shown)
    assert "Re-make these results" in page and "papermill" in page


def test_the_book_shows_only_presets_with_results(tmp_path, monkeypatch):
    from mimstudy.book.stored import book_presets

    (tmp_path / "ci").mkdir()
    monkeypatch.setenv("MIMSTUDY_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("MIMSTUDY_BOOK_PRESET", "ci,gpu")
    assert book_presets() == ["ci"]  # gpu has no results in this folder: the book leaves it out
    monkeypatch.setenv("MIMSTUDY_BOOK_PRESET", "gpu,quick")
    assert book_presets() == ["gpu"]  # none has: the first listed, so that loading it says what is missing
