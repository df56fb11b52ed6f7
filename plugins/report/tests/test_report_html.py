"""The generated document, parsed with html.parser: images, tables, SVG, failures."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from colorbatch_report.build import build_from_folder, sample_evenly
from colorbatch_report.fixtures import make_run_folder


def _images_exist(html, parsed):
    assert parsed.imgs, "no images referenced"
    for src in parsed.imgs:
        assert not src.startswith(("http", "/", "data:")), src
        assert (html.parent / src).is_file(), f"missing image {src}"


def test_full_report_matches_the_run_folder(run_folder, parse_report):
    html = build_from_folder(run_folder["path"])
    assert html == run_folder["path"] / "report" / "index.html"
    p = parse_report(html)
    _images_exist(html, p)
    assert p.external == [], "the page must not reference anything outside itself"
    assert p.scripts == 1

    # per-image table == metrics.json, cell by cell
    metrics = json.loads((run_folder["path"] / "metrics.json").read_text())
    table = p.tables["metrics-table"]
    head = table["head"]
    assert head[0].startswith("item") and "psnr" in " ".join(head) and "gray_psnr" in " ".join(head)
    keys = [h.split()[0] for h in head]
    assert len(table["rows"]) == len(metrics["items"])
    by_item = {r["item"]: r for r in metrics["items"]}
    for row in table["rows"]:
        truth = by_item[row[0]["value"]]
        for key, cell in zip(keys[1:], row[1:]):
            if key == "psnr_gain":
                assert float(cell["value"]) == pytest.approx(truth["psnr"] - truth["gray_psnr"])
            elif key == "ssim_gain":
                assert float(cell["value"]) == pytest.approx(truth["ssim"] - truth["gray_ssim"])
            else:
                assert float(cell["value"]) == truth[key], (row[0]["value"], key)

    # aggregate beside the gray baseline, equal to metrics.json's means
    agg = {r[0]["text"]: r for r in p.tables["aggregate"]["rows"]}
    assert float(agg["psnr"][1]["value"]) == metrics["aggregate"]["psnr"]["mean"]
    assert float(agg["psnr"][2]["value"]) == metrics["aggregate"]["gray_psnr"]["mean"]
    assert float(agg["ab_mse"][2]["value"]) == metrics["aggregate"]["gray_ab_mse"]["mean"]

    # training curves
    assert "loss-curve" in p.ids
    series = {pl["data-series"]: pl["points"].split() for pl in p.svg_polylines}
    assert len(series["train_loss"]) == len(run_folder["epochs"]) == len(series["val_loss"])

    # failures with their reasons
    assert len(p.failures) == len(run_folder["failures"])
    for f, li in zip(run_folder["failures"], p.failures):
        reason = f["error"].split(": ", 1)[1]  # the path is shown once, then the reason
        assert li["item"] == f["item"] and f["item"] in li["text"] and reason in li["text"]

    # summary figures and the gallery
    steps = p.tables["steps"]["rows"]
    assert [r[0]["text"] for r in steps] == ["load", "train", "colorize", "evaluate", "save"]
    assert sorted(c for c in p.cards if c) and set(run_folder["rows"][i]["item"] for i in range(14)) <= set(p.cards)


def test_report_json_summary(run_folder):
    html = build_from_folder(run_folder["path"])
    rep = json.loads((html.parent / "report.json").read_text())
    assert rep["final"] is True
    assert rep["run"]["ok"] == 14 and rep["run"]["failed"] == 2 and rep["run"]["skipped"] == 1
    assert rep["evaluation"]["items"] == 14 and rep["evaluation"]["ranked_by"]["metric"] == "psnr_gain"
    gains = sorted((r["psnr"] - r["gray_psnr"] for r in run_folder["rows"]), reverse=True)
    best = [b["psnr_gain"] for b in rep["evaluation"]["best"]]
    worst = [w["psnr_gain"] for w in rep["evaluation"]["worst"]]
    assert best == pytest.approx(gains[: len(best)])
    assert worst == pytest.approx(sorted(gains)[: len(worst)])
    assert rep["training"]["epochs"] == 6
    assert rep["training"]["best_epoch"]["val_loss"] == min(e["val_loss"] for e in run_folder["epochs"])
    assert rep["failures"] == run_folder["failures"]
    assert rep["gallery"] == {"shown": 14, "total": 14, "with_hints": 0}


@pytest.mark.parametrize(
    "files, expect_svg, expect_table",
    [
        (("events.jsonl",), True, True),  # crashed run: no run.json, metrics from events
        (("run.json",), False, False),  # summary only
        (("run.json", "metrics.csv"), False, True),
        (("run.json", "train_log.jsonl"), True, False),  # train-only
        (("recipe.json",), False, False),
    ],
)
def test_missing_files_degrade_gracefully(tmp_path, parse_report, files, expect_svg, expect_table):
    info = make_run_folder(tmp_path / "run", items=5, images=5, epochs=3, files=files)
    html = build_from_folder(tmp_path / "run")
    p = parse_report(html)
    _images_exist(html, p) if p.imgs else None
    assert "summary" in p.ids
    assert ("loss-curve" in p.ids) == expect_svg
    assert ("metrics-table" in p.tables) == expect_table
    if expect_table:
        assert len(p.tables["metrics-table"]["rows"]) == 5
        col = [h.split()[0] for h in p.tables["metrics-table"]["head"]].index("psnr")
        values = sorted(float(r[col]["value"]) for r in p.tables["metrics-table"]["rows"])
        assert values == sorted(r["psnr"] for r in info["rows"])
    if "events.jsonl" in files:
        assert len(p.failures) == 2 and "gallery" in p.ids  # failures rebuilt from events
    else:
        assert "gallery" not in p.ids
    rep = json.loads((html.parent / "report.json").read_text())
    assert rep["final"] == ("run.json" in files)


def test_unreadable_files_are_noted_not_fatal(run_folder, parse_report):
    path = run_folder["path"]
    (path / "run.json").write_text("{ not json")
    with open(path / "events.jsonl", "a") as fh:
        fh.write("garbage line\n")
    html = build_from_folder(path)
    text = html.read_text()
    assert "run.json: unreadable" in text and "events.jsonl: 1 unreadable line(s) skipped" in text
    assert len(parse_report(html).tables["metrics-table"]["rows"]) == 14


def test_only_the_last_run_in_events_counts(tmp_path, parse_report):
    make_run_folder(tmp_path / "run", items=3, images=3, failures=2, files=("events.jsonl",))
    first = (tmp_path / "run" / "events.jsonl").read_text()
    second = first.replace("img_", "second_")
    second = "\n".join(l for l in second.splitlines() if '"item_failed"' not in l) + "\n"
    (tmp_path / "run" / "events.jsonl").write_text(first + second)
    p = parse_report(build_from_folder(tmp_path / "run"))
    assert p.failures == []
    assert all("second_" in r[0]["value"] for r in p.tables["metrics-table"]["rows"])


def test_large_runs_are_sampled_and_paged(tmp_path, parse_report):
    make_run_folder(tmp_path / "run", items=450, images=60, size=24)
    html = build_from_folder(tmp_path / "run", max_gallery=25, thumbnail_size=64)
    p = parse_report(html)
    gallery_cards = p.cards[-25:]
    assert len(p.cards) == 25 + 12  # gallery + best + worst
    assert gallery_cards[0] == "photos/img_00000.png" and gallery_cards[-1] == "photos/img_00059.png"
    # the first page of the table is static HTML; all rows are in the page's JSON
    assert len(p.tables["metrics-table"]["rows"]) == 200
    text = html.read_text()
    start = text.index('id="metrics-data">') + len('id="metrics-data">')
    data = json.loads(text[start:text.index("</script>", start)])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["items"]
    assert [r[0] for r in data["rows"]] == [m["item"] for m in metrics]
    col = data["columns"].index("gray_ssim")
    assert [r[col] for r in data["rows"]] == [m["gray_ssim"] for m in metrics]
    rep = json.loads((html.parent / "report.json").read_text())
    assert rep["gallery"] == {"shown": 25, "total": 60, "with_hints": 0}
    from PIL import Image

    for src in set(p.imgs):
        with Image.open(html.parent / src) as im:
            assert max(im.size) <= 64
    assert 'data-page-size="24"' in html.read_text()


def test_rebuild_reuses_thumbnails(run_folder):
    html = build_from_folder(run_folder["path"])
    thumbs = sorted((html.parent / "thumbs").glob("*.jpg"))
    before = {t: t.stat().st_mtime_ns for t in thumbs}
    os.utime(thumbs[0], ns=(1, 1))
    build_from_folder(run_folder["path"])
    after = sorted((html.parent / "thumbs").glob("*.jpg"))
    assert after == thumbs
    assert thumbs[0].stat().st_mtime_ns == 1  # not rewritten
    shutil.rmtree(html.parent / "thumbs")
    build_from_folder(run_folder["path"])
    assert len(list((html.parent / "thumbs").glob("*.jpg"))) == len(before)


def test_names_are_escaped(tmp_path, parse_report):
    make_run_folder(tmp_path / "run", items=2, images=2, files=("run.json", "events.jsonl"))
    ev = tmp_path / "run" / "events.jsonl"
    ev.write_text(ev.read_text().replace("photos/img_00000.png", "photos/<script>alert(1)<\\/script>.png"))
    html = build_from_folder(tmp_path / "run")
    text = html.read_text()
    assert "<script>alert(1)" not in text
    assert parse_report(html).scripts == 1


def test_sample_evenly():
    assert sample_evenly(list(range(10)), 3) == [0, 4, 9]  # round(4.5) == 4
    assert sample_evenly(list(range(3)), 5) == [0, 1, 2]
    assert sample_evenly(list(range(100)), 0) == []


def test_gray_inputs_have_no_ground_truth_and_webp_works(tmp_path, parse_report):
    from PIL import Image

    make_run_folder(tmp_path / "run", items=3, images=3, files=("run.json", "events.jsonl"))
    for src in (tmp_path / "run" / "inputs").rglob("*.png"):
        Image.open(src).convert("L").save(src)  # the archive case: gray scans
    html = build_from_folder(tmp_path / "run", thumbnail_format="webp", thumbnail_size=40)
    p = parse_report(html)
    _images_exist(html, p)
    assert p.imgs and all(src.endswith(".webp") for src in p.imgs)
    assert not any("-truth." in src for src in p.imgs)
    assert any("-gray." in src for src in p.imgs) and any("-color." in src for src in p.imgs)
    with Image.open(html.parent / p.imgs[0]) as im:
        assert im.format == "WEBP" and max(im.size) <= 40


def test_browser_test_says_why_it_skips(monkeypatch):
    from colorbatch_report import browser

    monkeypatch.setattr(browser, "find_chromium", lambda: None)
    reason = browser.why_not()
    assert reason is not None and ("apt-get install chromium" in reason or "playwright" in reason)
