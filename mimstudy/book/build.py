"""``python -m mimstudy.book.build [--jobs N] <jupyter-book build arguments>``: the book, its pages
executed ``N`` at a time (default 2).

``jupyter-book build`` reads its pages one after the other, and reading a page executes it: each page
replays stored results in a kernel of its own, so on two cores one of them idles for the whole build.
This is the same command with Sphinx's parallel reading (``sphinx-build -j N``), which
``jupyter-book build`` has no option for: pages are read in ``N`` processes, then written as usual.
Extensions that do not declare themselves safe for parallel reading make Sphinx read serially, as
before.
"""

from __future__ import annotations

import functools
import sys

DEFAULT_JOBS = 2


def parse_jobs(args: list[str]) -> tuple[int, list[str]]:
    """``(N, the other arguments)`` of ``--jobs N`` (or ``--jobs=N``) among ``args``."""
    jobs, rest, i = DEFAULT_JOBS, [], 0
    while i < len(args):
        arg = args[i]
        if arg == "--jobs" or arg.startswith("--jobs="):
            value = arg.partition("=")[2] if "=" in arg else (args[i + 1] if i + 1 < len(args) else "")
            i += 1 if "=" in arg else 2
            if not value.isdigit() or int(value) < 1:
                raise SystemExit(f"--jobs takes a whole number of processes >= 1, not {value!r}")
            jobs = int(value)
            continue
        rest.append(arg)
        i += 1
    return jobs, rest


def main(argv: list[str] | None = None) -> None:
    jobs, args = parse_jobs(list(sys.argv[1:] if argv is None else argv))
    import jupyter_book.sphinx as sphinx_build
    from jupyter_book.cli.main import main as jupyter_book

    serial = sphinx_build.build_sphinx
    sphinx_build.build_sphinx = functools.partial(serial, jobs=jobs)  # the CLI imports it when it builds
    try:
        jupyter_book.main(["build", *args], prog_name="python -m mimstudy.book.build")
    finally:
        sphinx_build.build_sphinx = serial


if __name__ == "__main__":
    main()
