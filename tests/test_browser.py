"""The built book in a real browser: headless Chromium opens every page (tests/browser.py)."""

import pytest

from .browser import check_book, find_browser

BROWSER = find_browser()
needs_browser = pytest.mark.skipif(
    BROWSER is None, reason="no chromium: run scripts/install-browser.sh (make test does; it needs apt-get)")


@needs_browser
def test_the_checker_catches_what_a_reader_would_see_broken(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "good.html").write_text('<html><body><p id="here">fine</p><a href="sub/other.html">ok</a></body></html>')
    (tmp_path / "sub" / "other.html").write_text(
        '<html><body><img src="missing.png"><a href="../nowhere.html">x</a><a href="../good.html#gone">y</a>'
        '<div class="cell_output"><div class="output stderr"><pre>UserWarning: careful</pre></div></div>'
        '<script>undefined_function()</script></body></html>')
    check = check_book(tmp_path, BROWSER)
    assert (check.pages, check.images, check.links) == (2, 1, 3)
    problems = "\n".join(check.problems)
    for expected in ("sub/other.html: an image does not load", "sub/other.html: broken link to nowhere.html",
                     "missing anchor good.html#gone", "error or warning output: 'UserWarning: careful'",
                     "JavaScript error: ReferenceError: undefined_function is not defined"):
        assert expected in problems, problems
    assert not [p for p in check.problems if p.startswith("good.html")]
