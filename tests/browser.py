"""Open every page of a built book in headless Chromium and report what a reader would see go wrong.

Chromium is driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``: JSON
messages ending in NUL on file descriptors 3 and 4), so no websocket or Playwright is needed. For
each page: the load event must fire, every ``<img>`` must have loaded (``naturalWidth > 0``), no
request may fail, no JavaScript exception or console error may occur, and no cell output may be an
error, a traceback or a stderr stream (warnings). Internal links (``file://`` under the book) must
point at an existing file and, with a ``#fragment``, at an element id of that page.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
SKIPPED_FOLDERS = ("_static", "_sources", "_images", "reports", "_downloads")

PAGE_FACTS = r"""(() => {
  const imgs = [...document.images].map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0}));
  const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  const ids = [...document.querySelectorAll('[id]')].map(e => e.id);
  const bad = [...document.querySelectorAll('.output.stderr, .output.traceback, .output.error, .cell_output .stderr')]
      .map(e => e.innerText.slice(0, 300));
  const text = document.body ? document.body.innerText : '';
  return {imgs, links, ids, bad, title: document.title, traceback: text.includes('Traceback (most recent call last)')};
})()"""


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """A headless Chromium speaking the DevTools protocol over a pipe."""

    def __init__(self, binary: str):
        self.profile = tempfile.mkdtemp(prefix="mimstudy-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def fds():  # the browser reads commands on fd 3 and writes replies on fd 4
            read, write = os.dup(to_browser_r), os.dup(from_browser_w)  # out of the way of 3 and 4
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.process = subprocess.Popen(
            [binary, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--allow-file-access-from-files",
             f"--user-data-dir={self.profile}", "about:blank"],
            preexec_fn=fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                continue
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        for i, event in enumerate(self.events):
            if event.get("method") == method and event.get("sessionId") == session:
                return self.events.pop(i)
        while True:
            event = self._read_message(deadline)
            if event.get("method") == method and event.get("sessionId") == session:
                return event
            self.events.append(event)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._to_browser)
        os.close(self._from_browser)
        shutil.rmtree(self.profile, ignore_errors=True)


@dataclass
class BookCheck:
    pages: int = 0
    images: int = 0
    links: int = 0
    problems: list[str] = field(default_factory=list)


def problems_of(events: list[dict], page: str) -> list[str]:
    """JavaScript exceptions, console errors and failed requests among a page's DevTools events."""
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            found.append(f"{page}: JavaScript error: {details.get('exception', {}).get('description') or details.get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            found.append(f"{page}: console error: {[a.get('value', a.get('description')) for a in params.get('args', [])]}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            found.append(f"{page}: browser error: {entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            found.append(f"{page}: a request failed: {params.get('errorText')} ({params.get('type')})")
    return found


def check_book(html_root: str | Path, binary: str, timeout: float = 30) -> BookCheck:
    """Open every page under ``html_root`` (a built book's ``_build/html``) and collect the problems."""
    root = Path(html_root).resolve()
    pages = sorted(p for p in root.rglob("*.html") if not set(p.relative_to(root).parts[:-1]) & set(SKIPPED_FOLDERS))
    result = BookCheck()
    ids: dict[Path, set[str]] = {}
    links: list[tuple[Path, str]] = []
    browser = Chromium(binary)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        for page in pages:
            name = page.relative_to(root).as_posix()
            browser.events.clear()
            navigation = browser.send("Page.navigate", {"url": page.as_uri()}, session=session)
            if navigation.get("errorText"):
                result.problems.append(f"{name}: does not load: {navigation['errorText']}")
                continue
            try:
                browser.wait_for("Page.loadEventFired", session, timeout)
            except TimeoutError:
                result.problems.append(f"{name}: no load event within {timeout:.0f} s")
                continue
            time.sleep(0.2)  # let scripts run after the load event
            facts = browser.send("Runtime.evaluate", {"expression": PAGE_FACTS, "returnByValue": True},
                                 session=session)["result"]["value"]
            result.pages += 1
            result.images += len(facts["imgs"])
            result.problems += [f"{name}: an image does not load: {i['src'][:120]}" for i in facts["imgs"] if not i["ok"]]
            result.problems += [f"{name}: a cell shows an error or warning output: {text!r}" for text in facts["bad"]]
            if facts["traceback"]:
                result.problems.append(f"{name}: shows a Python traceback")
            result.problems += problems_of(browser.events, name)
            ids[page] = set(facts["ids"])
            links += [(page, href) for href in facts["links"]]
    finally:
        browser.close()
    for page, href in links:
        url, fragment = urldefrag(href)
        parsed = urlparse(url)
        if parsed.scheme != "file":
            continue  # links out of the book are not checked (no network)
        target = Path(unquote(parsed.path))
        if root not in target.parents and target != root:
            continue
        result.links += 1
        where = page.relative_to(root).as_posix()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            result.problems.append(f"{where}: broken link to {target.relative_to(root)}")
        elif fragment and target in ids and unquote(fragment) not in ids[target]:
            result.problems.append(f"{where}: link to a missing anchor {target.relative_to(root)}#{fragment}")
    return result
