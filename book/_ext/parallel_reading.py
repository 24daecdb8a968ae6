"""Two of Jupyter Book's own extensions are safe to read pages in parallel but do not say so, which makes
Sphinx read every page serially (``python -m mimstudy.book.build --jobs N`` would gain nothing):

* ``sphinx_multitoc_numbering`` numbers the sections across the table of contents: it replaces
  ``TocTreeCollector.assign_section_numbers``, which Sphinx calls in the main process once the pages
  have been read and their environments merged; it keeps nothing per page;
* ``sphinx_jupyterbook_latex`` adds nodes, configuration values and transforms that act only under the
  LaTeX builder; it keeps nothing in the environment.

Declared here once every extension is loaded (``builder-inited``: Jupyter Book loads some after the
local ones), before any page is read; only while they still declare nothing themselves.
"""

UNDECLARED_BUT_SAFE = ("sphinx_multitoc_numbering", "sphinx_jupyterbook_latex")


def declare(app):
    for name in UNDECLARED_BUT_SAFE:
        extension = app.extensions.get(name)
        if extension is not None and extension.parallel_read_safe is None:
            extension.parallel_read_safe = True


def setup(app):
    app.connect("builder-inited", declare)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
