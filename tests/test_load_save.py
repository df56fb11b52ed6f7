"""load -> grayscale -> save: sources, the awkward-input acceptance test, resume, safety."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _awkward import make_awkward_inputs
from colorbatch import hookimpl
from colorbatch.errors import ColorbatchError, ExitCode
from colorbatch.item import Item
from colorbatch.manifest import MANIFEST_NAME
from colorbatch.sources import SourceDef


def _hashes(folder: Path) -> dict[str, str]:
    out = {}
    for root, dirs, files in os.walk(folder):  # no followlinks: the loop stays a link
        for f in files:
            p = Path(root) / f
            if p.is_symlink():
                out[str(p)] = "link->" + os.readlink(p)
            else:
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
        for d in dirs:
            p = Path(root) / d
            if p.is_symlink():
                out[str(p)] = "link->" + os.readlink(p)
    return out


def _collector(seen: list):
    """A plugin adding a ``collect`` step that appends every item it sees to ``seen``."""

    class Collect:
        @hookimpl
        def colorbatch_register_steps(self):
            from pydantic import BaseModel, ConfigDict

            from colorbatch.steps import ItemStep, StepDef

            class O(BaseModel):
                model_config = ConfigDict(extra="forbid")

            class S(ItemStep):
                def process(self, item):
                    seen.append(item)
                    return item

            return [StepDef("collect", lambda: O, S)]

    return Collect()


def _load_ids(run_recipe, write_recipe, pm=None, loads=None, **options):
    """The ids a recipe of load steps yields, in order (through a collecting plugin)."""
    seen: list[Item] = []

    steps = [("load", opts) for opts in (loads or [options])] + [("collect", {})]
    path = write_recipe(steps)
    summary = run_recipe(path, pm=pm(_collector(seen)) if callable(pm) else None)
    return seen, summary


# --------------------------------------------------------------------------- #
# sources
# --------------------------------------------------------------------------- #


def test_folder_is_walked_sorted_with_index(tiny_image, tmp_path, write_recipe, run_recipe, colorbatch_pm):
    for name in ["b/z.png", "a.jpg", "b/a.png", "B.PNG", ".hidden.png", "._apple.jpg", "notes.txt", ".git/x.png"]:
        tiny_image(tmp_path / "in" / name) if name.endswith(("png", "PNG", "jpg")) else (
            tmp_path / "in" / name
        ).write_text("x")
    items, summary = _load_ids(run_recipe, write_recipe, pm=colorbatch_pm, source=str(tmp_path / "in"))
    assert [i.id for i in items] == ["B.PNG", "a.jpg", "b/a.png", "b/z.png"]
    assert [i.meta["index"] for i in items] == [0, 1, 2, 3]
    assert all(i.kind == "image" and i.path.is_file() for i in items)
    assert summary["ok"] == 4 and summary["failed"] == 0

    flat, _ = _load_ids(run_recipe, write_recipe, pm=colorbatch_pm, source=str(tmp_path / "in"), recursive=False)
    assert [i.id for i in flat] == ["B.PNG", "a.jpg"]
    limited, _ = _load_ids(run_recipe, write_recipe, pm=colorbatch_pm, source=str(tmp_path / "in"), limit=2)
    assert [i.id for i in limited] == ["B.PNG", "a.jpg"]
    only, _ = _load_ids(run_recipe, write_recipe, pm=colorbatch_pm, source=str(tmp_path / "in"), extensions=["JPG"])
    assert [i.id for i in only] == ["a.jpg"]


def test_glob_list_file_and_single_file(tiny_image, tmp_path, write_recipe, run_recipe, colorbatch_pm):
    for name in ["x/1.png", "x/2.png", "x/deep/3.png", "x/4.jpg"]:
        tiny_image(tmp_path / name)
    items, _ = _load_ids(run_recipe, write_recipe, pm=colorbatch_pm, source=str(tmp_path / "x" / "**" / "*.png"))
    assert [i.id for i in items] == ["1.png", "2.png", "deep/3.png"]

    listing = tmp_path / "x" / "list.txt"
    listing.write_text("# my picks\n4.jpg\n\ndeep/3.png\nmissing.png\n", encoding="utf-8")
    items, summary = _load_ids(run_recipe, write_recipe, pm=colorbatch_pm, source="x/list.txt")
    assert [i.id for i in items] == ["4.jpg", "deep/3.png", "missing.png"]  # paths only: lazy
    summary = run_recipe(write_recipe([("load", {"source": "x/list.txt"}), ("grayscale", {})]))
    assert summary["ok"] == 2 and summary["failed"] == 1
    assert "missing.png" in summary["failures"][0]["error"] and "not found" in summary["failures"][0]["error"]

    items, _ = _load_ids(run_recipe, write_recipe, pm=colorbatch_pm, source="x/2.png")  # relative to the recipe
    assert [(i.id, i.root) for i in items] == [("2.png", tmp_path / "x")]


def test_missing_source_is_one_clear_error(tmp_path, write_recipe, run_recipe):
    path = write_recipe([("load", {"source": "nowhere"}), ("save", {"out": "out"})])
    summary = run_recipe(path)
    assert summary["exit_code"] == ExitCode.USAGE
    assert "nowhere" in summary["error"] and "source not found" in summary["error"]
    assert not (tmp_path / "out").exists()


def test_unknown_layout_lists_the_available_ones(tmp_path, write_recipe, run_recipe):
    (tmp_path / "in").mkdir()
    summary = run_recipe(write_recipe([("load", {"source": "in", "layout": "ilsvcr"})]))
    assert "did you mean ilsvrc" in summary["error"] and "files" in summary["error"]


def test_two_loads_combine_upstream_first(tiny_image, tmp_path, write_recipe, run_recipe, colorbatch_pm):
    tiny_image(tmp_path / "one" / "b.png")
    tiny_image(tmp_path / "two" / "a.png")
    items, _ = _load_ids(
        run_recipe, write_recipe, pm=colorbatch_pm, loads=[{"source": "one"}, {"source": "two"}]
    )
    assert [(i.root.name, i.id) for i in items] == [("one", "b.png"), ("two", "a.png")]


def _ilsvrc(tmp_path, tiny_image, with_lists=True):
    root = tmp_path / "ILSVRC2017"
    det = root / "ILSVRC" / "Data" / "DET"
    train = ["ILSVRC2013_train/n01443537/n01443537_10007", "ILSVRC2013_train/n01443537/n01443537_2", "ILSVRC2014_train_0000/ILSVRC2014_train_00000001"]
    val = ["ILSVRC2017_DET_val_00000002", "ILSVRC2017_DET_val_00000001"]
    for split, names in (("train", train), ("val", val)):
        for n in names:
            tiny_image(det / split / f"{n}.JPEG", size=(16, 12))
    if with_lists:
        sets = root / "ILSVRC" / "ImageSets" / "DET"
        sets.mkdir(parents=True)
        (sets / "train.txt").write_text("".join(f"{n} {i + 1}\n" for i, n in enumerate(train)))
        (sets / "val.txt").write_text("".join(f"{n} {i + 1}\n" for i, n in enumerate(val)))
    return root


@pytest.mark.parametrize("with_lists", [True, False])
def test_ilsvrc_layout(tiny_image, tmp_path, write_recipe, run_recipe, colorbatch_pm, with_lists):
    root = _ilsvrc(tmp_path, tiny_image, with_lists)
    expected_train = [
        "ILSVRC2013_train/n01443537/n01443537_10007.JPEG",
        "ILSVRC2013_train/n01443537/n01443537_2.JPEG",
        "ILSVRC2014_train_0000/ILSVRC2014_train_00000001.JPEG",
    ]
    for source in (root, root / "ILSVRC", root / "ILSVRC" / "Data" / "DET" / "train"):
        items, _ = _load_ids(run_recipe, write_recipe, pm=colorbatch_pm, source=str(source))  # layout auto
        assert [i.id for i in items] == expected_train
        assert items[0].meta["split"] == "train" and items[0].meta["synset"] == "n01443537"
    items, _ = _load_ids(run_recipe, write_recipe, pm=colorbatch_pm, source=str(root), layout="ilsvrc", split="val")
    assert [i.id for i in items] == ["ILSVRC2017_DET_val_00000001.JPEG", "ILSVRC2017_DET_val_00000002.JPEG"]
    assert all(i.path.is_file() for i in items)
    items, _ = _load_ids(run_recipe, write_recipe, pm=colorbatch_pm, source=str(root / "ILSVRC" / "Data" / "DET" / "val"))
    assert len(items) == 2 and items[0].meta["split"] == "val"


def test_ilsvrc_refuses_a_plain_folder(tmp_path, tiny_image, write_recipe, run_recipe):
    tiny_image(tmp_path / "plain" / "a.png")
    summary = run_recipe(write_recipe([("load", {"source": "plain", "layout": "ilsvrc"})]))
    assert "not an ILSVRC2017_DET folder" in summary["error"]


def test_claimed_extensions_go_to_their_source(tiny_image, tmp_path, write_recipe, run_recipe, colorbatch_pm):
    calls = []

    def enumerate_fake(source, options, ctx):
        calls.append(source)
        return [Item(id=f"{Path(source).name}/{k:03d}", path=Path(source), kind="fake-frame") for k in range(2)]

    class FakeVideo:
        @hookimpl
        def colorbatch_register_sources(self):
            return [SourceDef("fakevideo", enumerate_fake, extensions=(".fvid",))]

    tiny_image(tmp_path / "mix" / "a.png")
    (tmp_path / "mix" / "sub").mkdir()
    (tmp_path / "mix" / "sub" / "film.FVID").write_bytes(b"video")
    tiny_image(tmp_path / "mix" / "z.png")

    seen: list[Item] = []

    pm = colorbatch_pm(FakeVideo(), _collector(seen))
    run_recipe(write_recipe([("load", {"source": "mix"}), ("collect", {})]), pm=pm)
    assert [(i.id, i.kind) for i in seen] == [
        ("a.png", "image"),
        ("sub/film.FVID/000", "fake-frame"),
        ("sub/film.FVID/001", "fake-frame"),
        ("z.png", "image"),
    ]
    seen.clear()
    run_recipe(write_recipe([("load", {"source": "mix/sub/film.FVID"}), ("collect", {})]), pm=pm)
    assert [i.id for i in seen] == ["film.FVID/000", "film.FVID/001"]
    seen.clear()
    run_recipe(write_recipe([("load", {"source": "mix", "layout": "fakevideo"}), ("collect", {})]), pm=pm)
    assert calls[-1].endswith("mix") and len(seen) == 2


# --------------------------------------------------------------------------- #
# grayscale and save
# --------------------------------------------------------------------------- #


def test_grayscale_passes_gray_through_and_mirrors_the_tree(tiny_image, tmp_path, write_recipe, run_recipe):
    gray = tiny_image(tmp_path / "in" / "deep" / "g.png", mode="L", pattern="noise")
    colour = tiny_image(tmp_path / "in" / "c.jpg", mode="RGB")
    tiny_image(tmp_path / "in" / "old.bmp", mode="L")
    path = write_recipe([("load", {"source": "in"}), ("grayscale", {}), ("save", {"out": "out"})])
    summary = run_recipe(path)
    assert (summary["ok"], summary["failed"], summary["exit_code"]) == (3, 0, 0)
    out = tmp_path / "out"
    assert np.array_equal(np.asarray(Image.open(out / "deep" / "g.png")), np.asarray(Image.open(gray)))
    with Image.open(out / "c.jpg") as im:
        assert im.mode == "L" and im.size == (32, 24)
    assert (out / "old.png").is_file()  # BMP is not an output format: PNG instead
    # the L* of the colour input is kept
    from colorbatch import color
    from colorbatch.images import read_image

    L_in = color.rgb_to_L_np(read_image(colour).pixels)
    L_out = color.gray_to_L_np(np.asarray(Image.open(out / "c.jpg"), np.float32) / 255)
    assert np.abs(L_in - L_out).mean() < 1.5  # JPEG loss only
    events = [json.loads(line) for line in (tmp_path / "runs" / "test" / "events.jsonl").read_text().splitlines()]
    saved = [e for e in events if e["event"] == "saved"]
    assert sorted(e["item"] for e in saved) == ["c.jpg", "deep/g.png", "old.bmp"]
    assert all(Path(e["output"]).is_file() and e["kind"] == "image" for e in saved)


def test_save_format_and_provenance(tiny_image, tmp_path, write_recipe, run_recipe):
    from colorbatch import __version__
    from colorbatch.images import read_metadata

    tiny_image(tmp_path / "in" / "a.png")
    run_recipe(write_recipe([("load", {"source": "in"}), ("grayscale", {}), ("save", {"out": "out", "format": "jpg", "quality": 80})]))
    meta = read_metadata(tmp_path / "out" / "a.jpg")
    assert meta["colorbatch"] == __version__ and meta["source"] == "a.png" and meta["steps"] == ["grayscale"]


def test_save_writes_gray_of_L_when_there_is_no_output(tiny_image, tmp_path, write_recipe, run_recipe):
    src = tiny_image(tmp_path / "in" / "g.png", mode="L")
    summary = run_recipe(write_recipe([("load", {"source": "in"}), ("save", {"out": "out"})]))
    assert summary["ok"] == 1
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "g.png")), np.asarray(Image.open(src)))


def test_save_refuses_to_write_over_inputs(tiny_image, tmp_path, write_recipe, run_recipe):
    tiny_image(tmp_path / "in" / "a.jpg")
    tiny_image(tmp_path / "in" / "b.png")
    before = _hashes(tmp_path / "in")
    # same folder, same names: refused before any work
    summary = run_recipe(write_recipe([("load", {"source": "in"}), ("grayscale", {}), ("save", {"out": "in"})]))
    assert summary["exit_code"] == ExitCode.USAGE and "is the input folder" in summary["error"]
    assert _hashes(tmp_path / "in") == before
    assert not (tmp_path / "runs" / "test" / "out").exists()


def test_save_same_folder_with_format(tiny_image, tmp_path, write_recipe, run_recipe):
    tiny_image(tmp_path / "in" / "a.jpg")
    tiny_image(tmp_path / "in" / "b.png")
    before = _hashes(tmp_path / "in")
    summary = run_recipe(
        write_recipe([("load", {"source": "in"}), ("grayscale", {}), ("save", {"out": "in", "format": "png"})])
    )
    assert summary["ok"] == 1 and summary["failed"] == 1
    assert "input itself" in summary["failures"][0]["error"] and "b.png" in summary["failures"][0]["item"]
    after = _hashes(tmp_path / "in")
    assert all(after[k] == v for k, v in before.items())  # inputs untouched
    assert (tmp_path / "in" / "a.png").is_file()
    # a second run must not read its own output a.png as an input, nor overwrite b.png
    summary = run_recipe(
        write_recipe([("load", {"source": "in"}), ("grayscale", {}), ("save", {"out": "in", "format": "png"})])
    )
    after2 = _hashes(tmp_path / "in")
    assert all(after2[k] == v for k, v in before.items())
    assert (summary["ok"], summary["skipped"], summary["failed"]) == (0, 1, 1)  # a.png not read back


def test_outputs_inside_the_input_folder_are_not_read_back(tiny_image, tmp_path, write_recipe, run_recipe):
    tiny_image(tmp_path / "in" / "a.png")
    recipe = write_recipe([("load", {"source": "in"}), ("grayscale", {}), ("save", {"out": "in/gray", "overwrite": True})])
    for _ in range(2):
        summary = run_recipe(recipe)
        assert summary["ok"] == 1
    assert sorted(p.name for p in (tmp_path / "in" / "gray").iterdir()) == [MANIFEST_NAME, "a.png"]


def test_inputs_differing_only_by_extension_do_not_overwrite_each_other(tiny_image, tmp_path, write_recipe, run_recipe):
    tiny_image(tmp_path / "in" / "a.jpg")
    tiny_image(tmp_path / "in" / "a.tif")
    summary = run_recipe(write_recipe([("load", {"source": "in"}), ("grayscale", {}), ("save", {"out": "out", "format": "png"})]))
    assert summary["ok"] == 1 and summary["failed"] == 1
    assert "already written for a.jpg" in summary["failures"][0]["error"]


def test_resume_skips_finished_items_and_overwrite_redoes_them(tiny_image, tmp_path, write_recipe, run_recipe):
    for n in ("a.png", "b.png", "c.png"):
        tiny_image(tmp_path / "in" / n, seed=len(n))
    recipe = write_recipe([("load", {"source": "in"}), ("grayscale", {}), ("save", {"out": "out"})])
    first = run_recipe(recipe)
    assert (first["ok"], first["skipped"]) == (3, 0)
    records = [json.loads(x) for x in (tmp_path / "out" / MANIFEST_NAME).read_text().splitlines()]
    assert {r["id"] for r in records} == {"a.png", "b.png", "c.png"}
    assert all(r["input"]["size"] > 0 and r["model"] is None for r in records)

    again = run_recipe(recipe)
    assert (again["ok"], again["skipped"]) == (0, 3)

    # a changed input, a deleted output and a torn manifest line are redone / ignored
    tiny_image(tmp_path / "in" / "a.png", pattern="noise")
    os.utime(tmp_path / "in" / "a.png", ns=(1, 1))
    (tmp_path / "out" / "b.png").unlink()
    with open(tmp_path / "out" / MANIFEST_NAME, "a") as fh:
        fh.write('{"id": "c.pn')
    third = run_recipe(recipe)
    assert (third["ok"], third["skipped"]) == (2, 1)

    forced = run_recipe(recipe, overrides=["steps.save.overwrite=true"])
    assert (forced["ok"], forced["skipped"]) == (3, 0)
    # other options make other outputs: not skipped
    other = run_recipe(recipe, overrides=["steps.save.quality=50"])
    assert other["skipped"] == 0


def test_resume_depends_on_the_model_id(tiny_image, tmp_path):
    from colorbatch.manifest import Manifest

    src = tiny_image(tmp_path / "a.png")
    (tmp_path / "out").mkdir()
    m = Manifest(tmp_path / "out")
    (tmp_path / "out" / "a.png").write_bytes(b"x")
    m.add("a.png", src, "a.png", "model-1", {"format": None})
    m.close()
    m2 = Manifest(tmp_path / "out")
    assert m2.is_done("a.png", src, "model-1", {"format": None})
    assert not m2.is_done("a.png", src, "model-2", {"format": None})
    assert not m2.is_done("a.png", src, "model-1", {"format": "png"})
    # rank files are merged
    m3 = Manifest(tmp_path / "out", rank=1)
    (tmp_path / "out" / "b.png").write_bytes(b"x")
    m3.add("b.png", src, "b.png", "model-1", {})
    m3.close()
    assert (tmp_path / "out" / ".colorbatch-manifest.rank1.jsonl").is_file()
    assert Manifest(tmp_path / "out").is_done("b.png", src, "model-1", {})


# --------------------------------------------------------------------------- #
# acceptance: every awkward input through load -> grayscale -> save
# --------------------------------------------------------------------------- #


def test_awkward_inputs_through_load_grayscale_save(tmp_path, tiny_image, write_recipe, run_recipe, monkeypatch):
    inputs = tmp_path / "archive"
    good, bad = make_awkward_inputs(inputs)
    # one more: an ordinary image over a (small) pixel limit given as a load option
    tiny_image(inputs / "big.png", size=(100, 100))
    bad["big.png"] = "max_pixels option"
    before = _hashes(inputs)

    recipe = write_recipe(
        [
            ("load", {"source": "archive", "max_pixels": 5000}),
            ("grayscale", {}),
            ("save", {"out": "out"}),
        ]
    )
    summary = run_recipe(recipe)
    out = tmp_path / "out"

    assert summary["ok"] == len(good), summary["failures"]
    assert summary["failed"] == len(bad)
    assert summary["exit_code"] == ExitCode.ITEMS_FAILED == 1
    for name, (w, h) in good.items():
        target = out / name
        if target.suffix.lower() == ".gif":
            target = target.with_suffix(".png")
        with Image.open(target) as im:
            assert im.size == (w, h), name
            assert im.mode == "L", name
    failures = summary["failures"]
    assert len(failures) == len(bad)
    for name, reason in bad.items():
        mine = [f for f in failures if f["item"] == str(inputs / name)]
        assert len(mine) == 1, (name, failures)
        assert reason in mine[0]["error"], (name, mine[0])
        assert mine[0]["error"].count("\n") == 0
    assert _hashes(inputs) == before  # inputs byte-identical, nothing added among them
    assert not list(out.rglob("*.tmp"))
    assert not (out / "notes.txt").exists() and not (out / "notes.png").exists()

    # rerun: finished items are skipped, bad ones reported again
    again = run_recipe(recipe)
    assert (again["ok"], again["skipped"], again["failed"]) == (0, len(good), len(bad))
    forced = run_recipe(recipe, overrides=["steps.save.overwrite=true"])
    assert (forced["ok"], forced["skipped"], forced["failed"]) == (len(good), 0, len(bad))
    assert _hashes(inputs) == before


def test_cli_run_reports_failures_and_exit_code(tmp_path, tiny_image, write_recipe):
    tiny_image(tmp_path / "in" / "ok.png")
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    recipe = write_recipe([("load", {"source": "in"}), ("grayscale", {}), ("save", {"out": "out"})])
    env = {**os.environ, "COLORBATCH_NO_PLUGINS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "colorbatch", "run", str(recipe), "--json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["ok"], summary["failed"]) == (1, 1)
    assert "broken.jpg" in summary["failures"][0]["item"]
    assert (tmp_path / "out" / "ok.png").is_file()


def test_out_may_not_be_an_existing_image_file(tiny_image, tmp_path, write_recipe, run_recipe):
    tiny_image(tmp_path / "in" / "a.png")
    tiny_image(tmp_path / "taken.png")
    summary = run_recipe(write_recipe([("load", {"source": "in"}), ("save", {"out": "taken.png"})]))
    assert summary["exit_code"] == ExitCode.USAGE and "is a file; give a folder" in summary["error"]
