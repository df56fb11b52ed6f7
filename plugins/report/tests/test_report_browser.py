"""The report in a real browser: Debian's chromium, headless, driven by Playwright
for Python (colorbatch_report.browser; the system binary, no downloaded browser).

Skips, saying why, only where no chromium (or no playwright) is installed; CI
installs both."""
from __future__ import annotations

import io
import json

import pytest

from colorbatch_report.browser import LOAD_ALL_IMAGES, browser, why_not
from colorbatch_report.build import build_from_folder
from colorbatch_report.fixtures import make_run_folder

WHY_NOT = why_not()
pytestmark = [pytest.mark.browser, pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))]


# colour hints of two gallery items, as the report step keeps them (thumbs/index.json)
HINTS = {"photos/img_00000.png": {"size": [80, 64], "points": [[20, 16, 3, "#ff0000"], [60, 48, 3, "#ffff80"]],
                                  "digest": "abcd1234"},
         "photos/img_00001.png": {"size": [80, 64], "points": [[40, 8, 2, "#2040c0"]], "digest": None}}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    make_run_folder(root / "run", items=260, images=30, epochs=7, failures=2, size=64)
    html = build_from_folder(root / "run")
    index = html.parent / "thumbs" / "index.json"
    index.write_text(json.dumps({**json.loads(index.read_text()), "hints": HINTS}))
    return build_from_folder(root / "run")


@pytest.fixture(scope="module")
def page(report):
    with browser(width=1280, height=1000) as b:
        b.open(report)
        yield b


def test_renders_and_images_load(page, report):
    from PIL import Image

    assert page.js("document.title") == "colorbatch report: synthetic"
    shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    assert shot.size == (1280, 1000)
    colours = shot.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "screenshot looks blank"
    lo, hi = zip(*shot.getextrema())
    assert max(hi) - min(lo) > 100
    images = page.js(LOAD_ALL_IMAGES)
    assert len(images) > 30
    broken = [i["src"] for i in images if not i["w"] or not i["h"]]
    assert broken == []
    assert page.js("document.querySelectorAll('#loss-curve polyline').length") == 2
    assert page.js("document.querySelector('#loss-curve').getBoundingClientRect().width") > 300


def test_slider_moves_the_split(page):
    js = """(() => {
      const card = document.querySelector('#gallery figure.card');
      const s = card.querySelector('input.slider'), over = card.querySelector('img.over');
      const before = getComputedStyle(over).clipPath;
      s.value = 20; s.dispatchEvent(new Event('input', {bubbles: true}));
      const after = getComputedStyle(over).clipPath;
      const line = card.querySelector('.divider').style.left;
      return {before, after, line};
    })()"""
    res = page.js(js)
    assert "50%" in res["before"]
    assert "80%" in res["after"] and res["line"] == "20%"


def test_table_sorts_by_clicking_headers(page, report):
    metrics = json.loads((report.parent.parent / "metrics.json").read_text())
    js = """((key) => {
      const t = document.querySelector('#metrics-table');
      const th = t.querySelector('th[data-key="' + key + '"]');
      const col = Array.prototype.indexOf.call(th.parentNode.children, th);
      const read = () => Array.from(t.tBodies[0].rows).map(r => Number(r.cells[col].dataset.value));
      th.click(); const asc = read(); const s1 = th.getAttribute('aria-sort');
      th.click(); const desc = read(); const s2 = th.getAttribute('aria-sort');
      return {asc, desc, s1, s2};
    })('psnr')"""
    res = page.js(js)
    want = sorted(r["psnr"] for r in metrics["items"])  # 260 rows: pages of 200
    assert res["asc"] == want[:200] and res["desc"] == want[::-1][:200]
    assert (res["s1"], res["s2"]) == ("ascending", "descending")
    items = page.js("""(() => { const t = document.querySelector('#metrics-table');
      t.querySelector('th[data-key="item"]').click();
      document.querySelector('#metrics-pager .next').click();
      return {rows: Array.from(t.tBodies[0].rows).map(r => r.cells[0].dataset.value),
              where: document.querySelector('#metrics-pager .where').textContent}; })()""")
    assert items["rows"] == sorted(r["item"] for r in metrics["items"])[200:]
    assert items["where"] == "rows 201\u2013260 of 260"


def test_gallery_pages(page):
    res = page.js("""(() => {
      const cards = Array.from(document.querySelectorAll('#gallery-grid figure.card'));
      const visible = () => cards.filter(c => c.offsetParent !== null).map(c => c.dataset.item);
      const first = visible();
      document.querySelector('#gallery-pager .next').click();
      const second = visible();
      const where = document.querySelector('#gallery-pager-bottom .where').textContent;
      document.querySelector('#gallery-pager-bottom .prev').click();
      return {n: cards.length, first, second, where, back: visible()};
    })()""")
    assert res["n"] == 30 and len(res["first"]) == 24 and len(res["second"]) == 6
    assert not set(res["first"]) & set(res["second"])
    assert res["where"] == "page 2 of 2" and res["back"] == res["first"]


def test_hint_marks_sit_on_their_places(page):
    """Each hint's circle is drawn at its fraction of the thumbnail, whatever its displayed size."""
    res = page.js("""(() => {
      const out = {};
      document.querySelectorAll('#gallery figure.card').forEach(card => {
        const box = card.querySelector('.compare img.under').getBoundingClientRect();
        const marks = Array.from(card.querySelectorAll('svg.hints circle')).map(c => {
          const r = c.getBoundingClientRect();
          return {fx: (r.x + r.width / 2 - box.x) / box.width, fy: (r.y + r.height / 2 - box.y) / box.height,
                  d: r.width, fill: getComputedStyle(c).fill};
        });
        const legend = card.querySelector('.hints-legend');
        if (marks.length || legend) out[card.dataset.item] = {marks, legend: legend && legend.textContent.trim(),
                                                             w: box.width};
      });
      return out;
    })()""")
    assert set(res) == set(HINTS)
    for item, rec in HINTS.items():
        w, h = rec["size"]
        got = res[item]
        assert got["legend"] == f"{len(rec['points'])} colour hint" + ("s" if len(rec["points"]) > 1 else "")
        assert got["w"] > 100
        assert len(got["marks"]) == len(rec["points"])
        for mark, (x, y, _r, colour) in zip(got["marks"], rec["points"]):
            assert mark["fx"] == pytest.approx(x / w, abs=0.01) and mark["fy"] == pytest.approx(y / h, abs=0.01)
            assert 8 <= mark["d"] <= 16  # a small circle on screen
            rgb = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
            assert mark["fill"] == "rgb(%d, %d, %d)" % rgb


def test_no_console_errors(page):
    page.js("window.scrollTo(0, document.body.scrollHeight)")
    page.js(LOAD_ALL_IMAGES)
    assert page.console_errors() == []


def test_checker_sees_broken_images_and_errors(tmp_path):
    """The checks above can fail: a missing thumbnail and a script error are caught."""
    make_run_folder(tmp_path / "run", items=3, images=3, epochs=0, size=32)
    html = build_from_folder(tmp_path / "run")
    victim = sorted((html.parent / "thumbs").glob("*-color.jpg"))[0]
    victim.unlink()
    with browser(width=800, height=600) as b:
        b.open(html)
        images = b.js(LOAD_ALL_IMAGES)
        # one page only: the pagers are hidden
        pagers = "['metrics-pager', 'gallery-pager', 'gallery-pager-bottom']"
        assert b.js(pagers + ".map(i => document.getElementById(i).offsetParent)") == [None, None, None]
        b.js("setTimeout(() => { throw new Error('boom'); }, 0); console.error('bad thing')")
        b.js("new Promise(r => setTimeout(r, 100))")
        errors = b.console_errors()
    assert [i["src"] for i in images if not i["w"]] == [f"thumbs/{victim.name}"] * 2  # best/worst + gallery
    assert any("boom" in e for e in errors) and any("bad thing" in e for e in errors)
    assert any("ERR_FILE_NOT_FOUND" in e or victim.name in e for e in errors)
