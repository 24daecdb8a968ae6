"""The book's presets and pages (its build from the committed results and a fresh ci run: tests/test_ci_preset.py)."""

import re


def verdicts_of(page: str) -> list[str]:
    """The presets named by the page's verdicts, in order."""
    return re.findall(r"Verdict on the <code[^>]*><span class=\"pre\">(\w+)</span></code> results", page)


def headings_of(page: str) -> list[str]:
    """The presets whose section headings (``preset_heading``) the page shows, in order."""
    return re.findall(r"The <code[^>]*><span class=\"pre\">(\w+)</span></code> preset", page)


def test_the_book_shows_only_presets_with_results(tmp_path, monkeypatch):
    from mimstudy.book.stored import book_presets

    (tmp_path / "ci").mkdir()
    monkeypatch.setenv("MIMSTUDY_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("MIMSTUDY_BOOK_PRESET", "ci,gpu")
    assert book_presets() == ["ci"]  # gpu has no results in this folder: the book leaves it out
    monkeypatch.setenv("MIMSTUDY_BOOK_PRESET", "gpu,quick")
    assert book_presets() == ["gpu"]  # none has: the first listed, so that loading it says what is missing
