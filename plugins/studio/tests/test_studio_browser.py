"""The page in a real headless Chromium (Playwright for Python driving the system's chromium, nothing
downloaded): it loads without console errors; a colour chosen and the image clicked places a hint, the image
changes there and the sidecar appears; Save writes what `colorbatch colorize` writes; keyboard navigation;
a model without hint inputs says why placement is off; traversal is refused."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio_testlib import cli, write_folder

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SIZE = 128
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    env = os.environ.get("COLORBATCH_CHROMIUM")
    if env and Path(env).is_file():
        return env
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def why_not() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return 'playwright is not installed (pip install -e "plugins/studio[test]")'
    if find_chromium() is None:
        return ("no chromium installed (apt-get install chromium, or COLORBATCH_CHROMIUM=/path/to/chrome); "
                "Playwright is never allowed to download one")
    return None


@pytest.fixture(scope="module")
def browser():
    reason = why_not()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=find_chromium(), headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.errors = []
    pg.on("console", lambda m: pg.errors.append(f"console.{m.type}: {m.text}") if m.type in ("error", "assert") else None)
    pg.on("pageerror", lambda e: pg.errors.append(f"exception: {e}"))
    pg.on("requestfailed", lambda r: pg.errors.append(f"failed: {r.url} {r.failure}"))
    yield pg
    context.close()


PIXELS = """(sel) => { const img = document.querySelector(sel);
  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  return {w: c.width, h: c.height, data: Array.from(g.getImageData(0, 0, c.width, c.height).data)}; }"""


def _after(page) -> np.ndarray:
    d = page.evaluate(PIXELS, "#after")
    return np.asarray(d["data"], dtype=np.int32).reshape(d["h"], d["w"], 4)[..., :3]


def test_place_a_hint_see_it_save_it_and_colorize_reproduces_it(page, tmp_path, models, live_factory):
    folder = write_folder(tmp_path / "photos", names=("a.png",))
    out = tmp_path / "out"
    live = live_factory(folder, out, models["aware"], size=SIZE)
    page.goto(live.url, wait_until="load")
    page.wait_for_selector("#grid .card img")
    page.wait_for_function("Array.from(document.querySelectorAll('#grid img')).every(i => i.complete && i.naturalWidth > 0)")
    page.click("#grid .card")
    page.wait_for_function("document.querySelector('#after').dataset.seq !== undefined")
    first = _after(page)
    seq = page.evaluate("document.querySelector('#after').dataset.seq")
    page.locator("#color").fill("#ff0000")
    box = page.locator("#stage").bounding_box()
    fx, fy = 0.25, 0.3
    page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    page.wait_for_function(f"document.querySelector('#after').dataset.seq !== '{seq}'")
    second = _after(page)
    H, W = first.shape[:2]
    cy, cx = int(fy * H), int(fx * W)
    win = (slice(max(0, cy - 3), cy + 4), slice(max(0, cx - 3), cx + 4))
    redder = (second[..., 0] - second[..., 1]) - (first[..., 0] - first[..., 1])
    assert redder[win].mean() > 20, redder[win].mean()
    assert redder[win].mean() > np.median(redder) + 10
    side = folder / "a.hints.json"
    assert side.is_file()
    hint = json.loads(side.read_text())["points"]
    assert len(hint) == 1 and hint[0]["color"] == "#ff0000"
    assert abs(hint[0]["x"] - fx * 160) <= 2 and abs(hint[0]["y"] - fy * 120) <= 2
    assert page.locator(".mark").count() == 1
    page.click("#save")
    page.wait_for_function("document.querySelector('#saved').textContent.startsWith('saved: ')")
    batch = tmp_path / "batch"
    # as the page's batch command says: on torch, as the previews (plain colorize picks onnxruntime on a CPU)
    r = cli("colorize", folder, "--out", batch, "--model", models["aware"], "--size", SIZE, "--runtime", "torch")
    assert r.returncode == 0, r.stderr
    saved, again = (np.asarray(Image.open(p / "a.png").convert("RGB")) for p in (out, batch))
    assert np.array_equal(saved, again)
    # remove the hint: the sidecar goes
    page.locator(".mark").count()
    page.keyboard.press("Delete")
    page.wait_for_function("document.querySelectorAll('.mark').length === 0")
    page.wait_for_timeout(300)
    assert not side.exists()
    assert page.errors == [], page.errors


def test_keyboard_and_a_model_without_hints(page, tmp_path, models, live_factory):
    folder = write_folder(tmp_path / "photos", names=("a.png", "b.png", "sub/c.png"))
    live = live_factory(folder, tmp_path / "out", models["plain"], size=SIZE)
    page.goto(live.url, wait_until="load")
    page.wait_for_selector("#grid .card")
    assert page.locator("#hints-reason").is_visible()
    assert "takes no colour hints" in page.locator("#hints-reason").text_content()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#name').textContent === 'b.png'")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("document.querySelector('#name').textContent === 'sub/c.png'")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("document.querySelector('#name').textContent === 'b.png'")
    page.wait_for_function("document.querySelector('#after').dataset.seq !== undefined")
    page.keyboard.press("b")
    assert page.locator("#split").input_value() == "100"
    page.keyboard.press("b")
    assert page.locator("#split").input_value() == "0"
    assert page.locator("#color").is_disabled()
    box = page.locator("#stage").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # no hint placed
    page.wait_for_timeout(200)
    assert page.locator(".mark").count() == 0 and not (folder / "b.hints.json").exists()
    page.keyboard.press("Escape")
    page.wait_for_selector("#grid-view:not([hidden])")
    assert page.errors == [], page.errors
    # traversal through the page's own origin is refused too
    for target in ("/files/in/..%2F..%2Fetc%2Fpasswd", "/files/in/%2Fetc%2Fpasswd", "/api/thumb?id=%2Fetc%2Fpasswd"):
        r = page.request.get(live.url.rstrip("/") + target)
        assert r.status == 403 and b"root:" not in r.body(), target
