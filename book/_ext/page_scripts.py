"""Sphinx extension of the book: pages without JavaScript errors in a browser (tests/test_browser.py).

* sphinx-thebe 0.3.1 adds its inline configuration (``const THEBE_JS_URL = ...``) once per read of
  the sources, and the book's build reads them more than once, so pages declared the constant twice
  (a SyntaxError on every page): each page keeps one copy of each script.
* pydata-sphinx-theme logs "Got invalid theme mode" to the console on a reader's first visit when the
  page's ``default_mode`` is empty (sphinx-book-theme leaves it so): it is set to ``auto`` (follow the
  reader's system), the theme's own fallback.
* wide tables scroll inside the text column instead of being clipped at its edge (``static/tables.css``).
"""

from __future__ import annotations

from pathlib import Path


def _unique_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        # an inline script is registered with filename None by one path and '' by another: the same script
        key = (str(getattr(script, "filename", script) or ""), repr(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def _default_mode(app, pagename, templatename, context, doctree) -> None:
    if not context.get("default_mode"):  # the theme's templates read it; sphinx-book-theme leaves it empty
        context["default_mode"] = "auto"


def setup(app):
    app.config.html_static_path.append(str(Path(__file__).parent / "static"))
    app.add_css_file("tables.css")
    app.connect("html-page-context", _default_mode)
    app.connect("html-page-context", _unique_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
