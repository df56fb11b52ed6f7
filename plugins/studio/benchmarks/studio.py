"""The studio's two figures (issue 15): new-hint latency at 512 px and the grid's open time for 2,000 images.

    python plugins/studio/benchmarks/studio.py --model M.safetensors [--photo P.jpg] [--images 2000]

1. **New hint**: a live studio (``--size 512``) on one photo; each of ``--runs`` (10) rounds places one
   more hint through ``POST /api/state`` (what the page sends on a click: the sidecar is written, the
   decoder runs on the kept encoder features, the result is recombined at display size and sent as
   PNG); the median wall time of the HTTP round trip, and the model's own share.
2. **Grid**: ``--images`` (2,000) generated JPEGs of 1600 x 1200 in a fresh folder; the time from
   loading the page to the first page's thumbnails all shown, thumbnails cold (made on request) and
   warm (cached in OUT/.studio). In headless Chromium through Playwright when a system chromium is
   installed; else the page's requests (listing, then the 48 thumbnails, 6 at a time as a browser
   does) over HTTP.

Prints one JSON object. Torch threads follow the studio's own sizing (free cores).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote


def _live(folder: Path, out: Path, model, size: int):
    import threading

    from colorbatch_studio.engine import Studio
    from colorbatch_studio.server import bind, build_app, make_server, url_of

    studio = Studio(folder, out, model=model, size=size, device="cpu")
    sock = bind("127.0.0.1", 0)
    server = make_server(build_app(studio), sock)
    t = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.02)

    def stop():
        server.should_exit = True
        t.join(10)
        sock.close()

    return studio, url_of(sock), stop


def _post(url: str, body: dict) -> tuple[float, float]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as r:
        r.read()
        model = float(r.headers.get("X-Studio-Seconds") or "nan")
    return time.perf_counter() - t0, model


def new_hint_latency(photo: Path, model, size: int, runs: int) -> dict:
    from PIL import Image

    work = Path(tempfile.mkdtemp(prefix="studio-bench-"))
    try:
        folder = work / "in"
        folder.mkdir()
        shutil.copy(photo, folder / photo.name)
        studio, url, stop = _live(folder, work / "out", model, size)
        try:
            if not studio.colorizer.accepts_hints:
                return {"skipped": studio.hints_reason}
            W, H = Image.open(photo).size
            target = url + "api/state?id=" + quote(photo.name, safe="")
            t0 = time.perf_counter()
            urllib.request.urlopen(url + "api/preview?id=" + quote(photo.name, safe=""), timeout=300).read()
            opened = time.perf_counter() - t0
            points, walls, models = [], [], []
            colours = ["#1f3a93", "#c0392b", "#27ae60", "#f1c40f", "#8e44ad"]
            for k in range(runs):
                points.append({"x": int(W * (0.1 + 0.08 * k)), "y": int(H * (0.2 + 0.06 * k)),
                               "radius": max(3, round(0.01 * max(W, H))), "color": colours[k % len(colours)]})
                wall, m = _post(target, {"points": points, "chroma": "auto"})
                walls.append(wall)
                models.append(m)
            return {"photo": photo.name, "width": W, "height": H, "size": size, "runs": runs,
                    "open_s": round(opened, 3), "median_s": round(statistics.median(walls), 3),
                    "max_s": round(max(walls), 3), "model_median_s": round(statistics.median(models), 3)}
        finally:
            stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _make_images(folder: Path, n: int) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:1200, 0:1600].astype(np.float32)
    base = 110 + 50 * np.sin(xx / 90.0) + 40 * np.cos(yy / 70.0)
    for i in range(n):
        img = np.clip(base + rng.normal(0, 12, size=(1, 1)) + (i % 37), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"scan{i:04d}.jpg", quality=85)


def _browser_open(url: str) -> float | None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        return None
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = b.new_page(viewport={"width": 1280, "height": 900})
            t0 = time.perf_counter()
            page.goto(url, wait_until="load")
            page.wait_for_selector("#grid .card img")
            page.wait_for_function(
                "Array.from(document.querySelectorAll('#grid img')).filter(i => { const r = i.getBoundingClientRect();"
                " return r.top < innerHeight; }).every(i => i.complete && i.naturalWidth > 0)", timeout=120_000)
            return time.perf_counter() - t0
        finally:
            b.close()


def _http_open(url: str) -> float:
    t0 = time.perf_counter()
    page = json.loads(urllib.request.urlopen(url + "api/images?page=0&per=48", timeout=120).read())

    def get(it):
        return urllib.request.urlopen(url + "api/thumb?id=" + quote(it["id"], safe=""), timeout=120).read()

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(get, page["items"]))
    return time.perf_counter() - t0


def grid_open(n: int, model, keep: Path | None) -> dict:
    work = keep or Path(tempfile.mkdtemp(prefix="studio-grid-"))
    folder = work / "in"
    t0 = time.perf_counter()
    if not folder.is_dir() or len(list(folder.glob("*.jpg"))) != n:
        shutil.rmtree(folder, ignore_errors=True)
        _make_images(folder, n)
    made = time.perf_counter() - t0
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    res: dict = {"images": n, "image_px": "1600x1200 JPEG", "generated_s": round(made, 1)}
    try:
        t0 = time.perf_counter()
        studio, url, stop = _live(folder, out, model, 256)
        res["studio_start_s"] = round(time.perf_counter() - t0, 2)
        try:
            cold = _browser_open(url)
            how = "chromium"
            if cold is None:
                cold, how = _http_open(url), "http"
            warm = _browser_open(url) if how == "chromium" else _http_open(url)
            res.update({"measured_with": how, "cold_s": round(cold, 2), "warm_s": round(warm, 2)})
        finally:
            stop()
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="a hint-aware checkpoint (default: the one colorize would use)")
    p.add_argument("--photo", type=Path, help="the photo of the hint test (default: a 1600 x 1200 scene)")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--keep", type=Path, help="keep the generated folder here (reused by the next run)")
    p.add_argument("--only", choices=("hint", "grid"))
    a = p.parse_args(argv)
    res: dict = {}
    if a.only != "grid":
        photo = a.photo
        tmp = None
        if photo is None:
            tmp = Path(tempfile.mkdtemp(prefix="studio-photo-"))
            _make_images(tmp, 1)
            photo = tmp / "scan0000.jpg"
        res["new_hint"] = new_hint_latency(photo, a.model, a.size, a.runs)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if a.only != "hint":
        res["grid"] = grid_open(a.images, a.model, a.keep)
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
