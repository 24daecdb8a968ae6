"""``python -m mimstudy.book.build``: jupyter-book build's arguments, plus ``--jobs N``.

That the pages are then read in parallel is checked by every book build of the tests (conftest's
``build_book``): an extension that made Sphinx read serially would warn, and the build runs with -W."""

import pytest

from mimstudy.book.build import DEFAULT_JOBS, parse_jobs


def test_jobs_are_taken_out_of_the_arguments():
    assert parse_jobs([".", "-W"]) == (DEFAULT_JOBS, [".", "-W"])
    assert parse_jobs(["--jobs", "3", ".", "--keep-going"]) == (3, [".", "--keep-going"])
    assert parse_jobs([".", "--jobs=1"]) == (1, ["."])


@pytest.mark.parametrize("args", [["--jobs", "0", "."], ["--jobs", "two"], ["--jobs"], ["--jobs=-1"]])
def test_a_bad_number_of_jobs_says_what_it_takes(args):
    with pytest.raises(SystemExit, match="--jobs takes a whole number of processes >= 1"):
        parse_jobs(args)
