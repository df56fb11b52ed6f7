"""Fixtures for the report plugin's tests: synthetic run folders and an HTML parser."""
from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from colorbatch_report.fixtures import make_run_folder


class ReportParser(HTMLParser):
    """Collects what the tests look at: images, tables, svg, failures, links."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.imgs: list[str] = []
        self.external: list[str] = []
        self.tables: dict[str, dict] = {}
        self.ids: set[str] = set()
        self.svg_polylines: list[dict] = []
        self.svg_circles = 0
        self.failures: list[str] = []
        self.cards: list[str] = []
        self.hint_marks: dict[str, list[dict]] = {}  # card item -> its hint circles (cx, cy, fill, ...)
        self.hint_legends: dict[str, str] = {}  # card item -> the legend's text
        self._card = None
        self._hints_svg = False
        self._legend = None
        self.scripts = 0
        self._table = None
        self._row = None
        self._cell = None
        self._li = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        for key in ("src", "href"):
            v = a.get(key)
            if v and (v.startswith(("http:", "https:", "//")) or (tag == "link" and key == "href" and not v.startswith("data:"))):
                self.external.append(v)
        if tag == "script" and a.get("type") != "application/json":
            self.scripts += 1
            if a.get("src"):
                self.external.append(a["src"])
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        elif tag == "table":
            self._table = {"head": [], "rows": []}
            self.tables[a.get("id") or f"table{len(self.tables)}"] = self._table
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = {"tag": tag, "value": a.get("data-value"), "text": "", "class": a.get("class", "")}
        elif tag == "polyline":
            self.svg_polylines.append(a)
        elif tag == "circle":
            self.svg_circles += 1
            if self._hints_svg and self._card is not None:
                self.hint_marks.setdefault(self._card, []).append(a)
        elif tag == "svg" and "hints" in (a.get("class") or "").split():
            self._hints_svg = True
        elif tag == "span" and "hints-legend" in (a.get("class") or "").split() and self._card is not None:
            self._legend = ""
        elif tag == "li" and "data-item" in a:
            self._li = {"item": a["data-item"], "text": ""}
        elif tag == "figure" and "card" in (a.get("class") or ""):
            self.cards.append(a.get("data-item"))
            self._card = a.get("data-item")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            if self._row and all(c["tag"] == "th" for c in self._row):
                self._table["head"] = [c["text"].strip() for c in self._row]
            else:
                self._table["rows"].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "li" and self._li is not None:
            self.failures.append(self._li)
            self._li = None
        elif tag == "svg":
            self._hints_svg = False
        elif tag == "span" and self._legend is not None:
            self.hint_legends[self._card] = self._legend.strip()
            self._legend = None
        elif tag == "figure":
            self._card = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
        if self._li is not None:
            self._li["text"] += data
        if self._legend is not None:
            self._legend += data


def parse(path: Path) -> ReportParser:
    p = ReportParser()
    p.feed(Path(path).read_text(encoding="utf-8"))
    p.close()
    return p


@pytest.fixture
def run_folder(tmp_path):
    """A complete synthetic run folder (train + colorize + evaluate + save)."""
    info = make_run_folder(tmp_path / "run", items=14, images=14, epochs=6, failures=2)
    info["path"] = tmp_path / "run"
    return info


@pytest.fixture
def parse_report():
    return parse


@pytest.fixture(autouse=True, scope="module")
def _browser_driver_stopped_after_each_module():
    """The browser tests share one Playwright driver per process; stop it after each module
    so that other plugins' browser tests in the same run can start their own."""
    yield
    from colorbatch_report import browser

    browser.stop()
