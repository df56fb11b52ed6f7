"""Open a report in headless chromium and check it, through Playwright for Python.

Playwright drives the system's chromium (Debian's ``chromium``, found on PATH,
or ``COLORBATCH_CHROMIUM``) through ``executable_path``: it never downloads a
browser of its own. Playwright is a test dependency (``pip install -e
"plugins/report[test]"``). Used by the plugin's browser test and by hand::

    python -m colorbatch_report.browser runs/x/report/index.html --screenshot shot.png
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
# Debian's chromium runs as root (CI, containers) only without its sandbox
ARGS = ("--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--hide-scrollbars", "--mute-audio")


def find_chromium() -> str | None:
    """The chromium to drive: ``COLORBATCH_CHROMIUM``, else the first of CANDIDATES on PATH."""
    env = os.environ.get("COLORBATCH_CHROMIUM")
    if env and Path(env).is_file():
        return env
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def why_not() -> str | None:
    """None when a browser test can run here, else the reason it cannot (for a skip)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return 'playwright is not installed (pip install -e "plugins/report[test]")'
    if find_chromium() is None:
        return ("no chromium installed (apt-get install chromium, or COLORBATCH_CHROMIUM=/path/to/chrome); "
                "CI installs it and runs this test")
    return None


class Page:
    """A Playwright page that records console errors, uncaught exceptions and failed loads."""

    def __init__(self, page):
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"exception: {exc}"))
        page.on("requestfailed", lambda req: self.errors.append(f"failed: {req.url} {req.failure}"))

    def _console(self, msg) -> None:
        if msg.type in ("error", "assert"):
            where = msg.location.get("url", "") if isinstance(msg.location, dict) else ""
            self.errors.append(f"console.{msg.type}: {msg.text} {where}".rstrip())

    def open(self, path: Path) -> None:
        self.page.goto(Path(path).resolve().as_uri(), wait_until="load")

    def js(self, expression: str):
        """The value of a JavaScript expression (a promise is awaited)."""
        return self.page.evaluate(expression)

    def screenshot(self, full_page: bool = False) -> bytes:
        return self.page.screenshot(full_page=full_page)

    def console_errors(self) -> list[str]:
        return list(self.errors)


_PLAYWRIGHT = None


def _playwright():
    """One Playwright driver per process (its sync API cannot be started twice at once)."""
    global _PLAYWRIGHT
    if _PLAYWRIGHT is None:
        import atexit

        from playwright.sync_api import sync_playwright

        _PLAYWRIGHT = sync_playwright().start()
        atexit.register(stop)
    return _PLAYWRIGHT


def stop() -> None:
    """Stop this process's Playwright driver, if started, so that other code (another
    plugin's browser tests in the same pytest run) can start its own sync Playwright."""
    global _PLAYWRIGHT
    if _PLAYWRIGHT is not None:
        driver, _PLAYWRIGHT = _PLAYWRIGHT, None
        driver.stop()


@contextlib.contextmanager
def browser(binary: str | None = None, width: int = 1280, height: int = 1000):
    """A headless chromium with one fresh page (a ``Page``) of ``width`` x ``height`` CSS pixels."""
    binary = binary or find_chromium()
    if not binary:
        raise FileNotFoundError("no chromium found (install Debian's chromium: apt-get install chromium)")
    b = _playwright().chromium.launch(executable_path=binary, headless=True, args=list(ARGS))
    try:
        context = b.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
        yield Page(context.new_page())
    finally:
        b.close()


LOAD_ALL_IMAGES = """
(async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
    i.addEventListener('load', r); i.addEventListener('error', r); })));
  return imgs.map(i => ({src: i.getAttribute('src'), w: i.naturalWidth, h: i.naturalHeight}));
})()
"""


def check_report(html: Path, screenshot: Path | None = None, binary: str | None = None) -> dict:
    """Open ``html`` headless; return what a test needs to judge it."""
    with browser(binary) as page:
        page.open(html)
        out: dict = {"title": page.js("document.title"), "screenshot_png": page.screenshot()}
        out["images"] = page.js(LOAD_ALL_IMAGES)
        if screenshot is not None:
            Path(screenshot).write_bytes(page.screenshot(full_page=True))
        out["console_errors"] = page.console_errors()
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("html", type=Path)
    p.add_argument("--screenshot", type=Path, help="write a full-page PNG here")
    a = p.parse_args(argv)
    reason = why_not()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    res = check_report(a.html, a.screenshot)
    broken = [i["src"] for i in res["images"] if not i["w"]]
    print(json.dumps({"title": res["title"], "images": len(res["images"]), "broken_images": broken,
                      "console_errors": res["console_errors"]}, indent=2))
    return 1 if broken or res["console_errors"] else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
