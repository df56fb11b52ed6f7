"""The committed corpus manifest (tools/corpus/manifest.csv) keeps evaluation
sources out and is internally consistent; the builder's filters work.

Fast, offline, no dependency on data/ existing.
"""
import csv
import importlib.util
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "corpus" / "build_corpus.py"
MANIFEST = ROOT / "tools" / "corpus" / "manifest.csv"


def _load():
    spec = importlib.util.spec_from_file_location("build_corpus", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_corpus", mod)   # dataclasses look the module up
    spec.loader.exec_module(mod)
    return mod


bc = _load()


@pytest.fixture(scope="module")
def rows():
    with open(MANIFEST, newline="") as fh:
        return list(csv.DictReader(fh))


def _good_rows():
    base = dict(package_version="1", licence="GPL-2", sha256="0" * 64, width="10", height="10",
                parts="")
    return [
        dict(base, file="scenes/a.jpg", package="kphotoalbum", original_path="/x/a.jpg",
             kind="scene", split="train"),
        dict(base, file="scenes/b.jpg", package="kphotoalbum", original_path="/x/b.jpg",
             kind="scene", split="val"),
        dict(base, file="cutouts/c.png", package="tuxpaint-stamps-default",
             original_path="/y/c.png", kind="cutout", split="train"),
        dict(base, file="composites/d.jpg", package="kphotoalbum+tuxpaint-stamps-default",
             original_path="composite(seed=1)", kind="composite", split="train",
             parts="scenes/a.jpg;cutouts/c.png"),
    ]


# ---- the committed manifest ------------------------------------------------

def test_manifest_is_small_and_has_columns(rows):
    assert MANIFEST.stat().st_size < 500_000
    with open(MANIFEST, newline="") as fh:
        header = next(csv.reader(fh))
    for c in bc.REQUIRED_COLUMNS + ["parts"]:
        assert c in header
    kinds = {r["kind"] for r in rows}
    assert {"scene", "cutout", "composite"} <= kinds
    assert len(rows) > 100


def test_manifest_validates(rows):
    assert bc.validate_rows(rows) == []


def test_no_evaluation_sources(rows):
    for r in rows:
        for pkg in r["package"].split("+"):
            assert pkg not in bc.DENYLIST_PACKAGES, r
            assert not pkg.startswith("lomiri-wallpapers"), r
            for bad in ("python3-skimage", "python3-sklearn", "python3-matplotlib",
                        "python3-scipy", "gnome-backgrounds", "ukui-wallpapers",
                        "mate-backgrounds", "plasma-workspace-wallpapers"):
                assert not pkg.startswith(bad), r
        low = r["original_path"].lower()
        for word in ("skimage", "scikit", "sklearn", "matplotlib", "scipy"):
            assert word not in low, r


def test_composites_use_train_parts_only(rows):
    split = {r["file"]: r["split"] for r in rows}
    comps = [r for r in rows if r["kind"] == "composite"]
    assert comps
    for r in comps:
        assert r["split"] == "train"
        parts = r["parts"].split(";")
        assert parts[0].startswith("scenes/")
        assert all(p.startswith("cutouts/") for p in parts[1:]) and 2 <= len(parts) <= 4
        for p in parts:
            assert split[p] == "train", (r["file"], p)


def test_val_split_is_about_ten_percent(rows):
    for kind in ("scene", "cutout"):
        sel = [r for r in rows if r["kind"] == kind]
        val = sum(r["split"] == "val" for r in sel)
        assert 0 < val < 0.25 * len(sel)
        for r in sel:   # deterministic rule
            assert r["split"] == bc.split_of(r["package"], r["original_path"])


def test_required_columns_filled(rows):
    for r in rows:
        for c in bc.REQUIRED_COLUMNS:
            assert r[c].strip(), (r["file"], c)


# ---- each check can fail ---------------------------------------------------

def test_validate_accepts_good_rows():
    assert bc.validate_rows(_good_rows()) == []


@pytest.mark.parametrize("package", [
    "mate-backgrounds", "plasma-workspace-wallpapers", "lomiri-wallpapers",
    "lomiri-wallpapers-16.04", "gnome-backgrounds", "ukui-wallpapers",
    "python3-skimage", "python3-skimage-lib", "python3-sklearn", "python3-matplotlib",
    "python3-scipy", "matplotlib-data", "kphotoalbum+lomiri-wallpapers-16.04",
])
def test_denylisted_package_is_reported(package):
    assert bc.denied(package) is not None
    bad = _good_rows()
    bad[0]["package"] = package
    assert any("denylist" in p for p in bc.validate_rows(bad))


@pytest.mark.parametrize("path", [
    "/usr/lib/python3/dist-packages/skimage/data/astronaut.png",
    "/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg",
    "/usr/lib/python3/dist-packages/sklearn/datasets/images/china.jpg",
    "/usr/lib/python3/dist-packages/scipy/datasets/face.dat",
])
def test_denylisted_path_is_reported(path):
    assert bc.denied("some-package", path) is not None
    bad = _good_rows()
    bad[2]["original_path"] = path
    assert bc.validate_rows(bad)


def test_allowed_package_passes():
    assert bc.denied("tuxpaint-stamps-default", "/usr/share/tuxpaint/stamps/a.png") is None


def test_composite_with_val_part_is_reported():
    bad = _good_rows()
    bad[3]["parts"] = "scenes/b.jpg;cutouts/c.png"
    assert any("val split" in p for p in bc.validate_rows(bad))


def test_composite_with_missing_part_or_val_split_is_reported():
    bad = _good_rows()
    bad[3]["parts"] = "scenes/zzz.jpg"
    assert any("not in manifest" in p for p in bc.validate_rows(bad))
    bad = _good_rows()
    bad[3]["split"] = "val"
    assert any("not in train split" in p for p in bc.validate_rows(bad))


@pytest.mark.parametrize("col", bc.REQUIRED_COLUMNS)
def test_empty_required_column_is_reported(col):
    bad = _good_rows()
    bad[1][col] = ""
    assert any(f"empty {col}" in p for p in bc.validate_rows(bad))


def test_bad_kind_and_split_are_reported():
    bad = _good_rows()
    bad[0]["kind"] = "wallpaper"
    bad[1]["split"] = "test"
    probs = bc.validate_rows(bad)
    assert any("bad kind" in p for p in probs) and any("bad split" in p for p in probs)


# ---- filters on tiny generated images ----------------------------------------

def _noise(seed, size=(96, 64), saturate=True):
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    # smooth blocks so perceptual hashes are stable
    im = Image.fromarray(arr).resize((12, 8), Image.BILINEAR).resize(size, Image.BICUBIC)
    return im


def test_near_gray_detection():
    gray = Image.new("RGB", (64, 64), (120, 120, 120))
    assert bc.is_near_gray(gray)
    tinted = Image.new("RGB", (64, 64), (124, 120, 118))   # chroma ~3
    assert bc.is_near_gray(tinted)
    red = Image.new("RGB", (64, 64), (200, 40, 40))
    assert not bc.is_near_gray(red)
    assert bc.mean_chroma(red) > 50
    # transparent coloured pixels do not count for cut-outs
    rgba = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    rgba.paste(Image.new("RGBA", (32, 32), (128, 128, 128, 255)), (0, 0))
    assert bc.is_near_gray(rgba)


def test_lab_matches_reference_values():
    lab = bc.srgb_to_lab(np.array([[255, 255, 255], [255, 0, 0], [0, 0, 0]], dtype=float))
    assert np.allclose(lab[0], [100, 0, 0], atol=0.05)
    assert np.allclose(lab[1], [53.24, 80.09, 67.20], atol=0.1)
    assert np.allclose(lab[2], [0, 0, 0], atol=1e-6)


def _png_bytes(im):
    b = io.BytesIO()
    im.save(b, "PNG")
    return b.getvalue()


def test_dedupe_exact_near_and_distinct():
    d = bc.Deduper()
    a = _noise(1)
    assert d.check("a", _png_bytes(a), a) is None
    # exact same bytes
    assert "exact duplicate of a" in d.check("a2", _png_bytes(a), a)
    # resized + JPEG re-encoded copy: near duplicate
    b = io.BytesIO()
    a.resize((192, 128), Image.BICUBIC).save(b, "JPEG", quality=80)
    a_jpg = Image.open(io.BytesIO(b.getvalue())).convert("RGB")
    assert "near duplicate of a" in d.check("a3", b.getvalue(), a_jpg)
    # an unrelated image is new
    c = _noise(2)
    assert d.check("c", _png_bytes(c), c) is None
    # same layout, different colours: not a duplicate (thumbnail test)
    swapped = Image.fromarray(np.asarray(c)[..., ::-1].copy())
    fa, fb = bc.Fingerprint.of(c), bc.Fingerprint.of(swapped)
    if fa.distance(fb)[2] > bc.THUMB_DUP:
        assert d.check("c-swapped", _png_bytes(swapped), swapped) is None


def test_eval_checker_drops_copies(tmp_path):
    a = _noise(3, (160, 120))
    a.resize((512, 384), Image.LANCZOS).save(tmp_path / "eval.jpg", quality=95)
    ck = bc.EvalChecker(tmp_path)
    assert ck.match(a) is not None
    assert ck.match(a.transpose(Image.FLIP_LEFT_RIGHT)) is not None
    assert ck.match(_noise(4, (160, 120))) is None
    assert bc.EvalChecker(None).match(a) is None


def test_cutout_trim_and_fit():
    im = Image.new("RGBA", (100, 80), (0, 0, 0, 0))
    im.paste(Image.new("RGBA", (30, 20), (200, 100, 0, 255)), (10, 5))
    t = bc.prepare_cutout(im)
    assert t.size == (30, 20)
    assert bc.prepare_cutout(Image.new("RGBA", (50, 50), (1, 2, 3, 255))) is None
    big = Image.new("RGBA", (800, 400), (200, 100, 0, 255))
    assert max(bc.fit(big, 384).size) == 384


def test_split_is_deterministic():
    assert bc.split_of("p", "/a") == bc.split_of("p", "/a")
    splits = [bc.split_of("p", f"/img{i}.png") for i in range(1000)]
    assert 50 < splits.count("val") < 150


def test_composites_deterministic_and_train_only():
    scenes = [("scenes/s.jpg", _noise(5, (400, 300)))]
    cut = Image.new("RGBA", (80, 60), (0, 0, 0, 0))
    cut.paste(Image.new("RGBA", (40, 40), (255, 0, 0, 255)), (20, 10))
    cutouts = [("cutouts/c.png", cut), ("cutouts/d.png", cut)]
    r1 = bc.make_composites(np.random.default_rng(7), scenes, cutouts, 4, None)
    r2 = bc.make_composites(np.random.default_rng(7), scenes, cutouts, 4, None)
    assert len(r1) == 4
    for (n1, i1, p1), (n2, i2, p2) in zip(r1, r2):
        assert n1 == n2 and p1 == p2 and np.array_equal(np.asarray(i1), np.asarray(i2))
        assert 384 <= max(i1.size) <= 512
        assert p1[0] == "scenes/s.jpg" and 2 <= len(p1) <= 4


def test_dep5_per_file_licence():
    text = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: someone
License: GPL-3+

Files: src/a/resource/*
       src/b/x.svg
Copyright: other
License: CC-BY-SA-4.0

Files: src/a/resource/fish1.jpg
Copyright: photographer
License: public-domain
"""
    st = bc.dep5_stanzas(text)
    assert bc.dep5_licence(st, "src/zzz/q.png") == "GPL-3+"
    assert bc.dep5_licence(st, "src/a/resource/other.webp") == "CC-BY-SA-4.0"
    # last matching stanza wins; the extension may differ (.jpg shipped as .webp)
    assert bc.dep5_licence(st, "src/a/resource/fish1.webp") == "public-domain"
    assert bc.dep5_licence(st, "src/b/x.svg") == "CC-BY-SA-4.0"


def test_qt_rcc_reader_roundtrip():
    """A tiny hand-built .rcc (format 1): one dir, one plain and one zlib file."""
    import struct
    import zlib
    sys.path.insert(0, str(ROOT / "tools" / "corpus"))
    from qt_rcc import read_rcc

    def name(s):
        return struct.pack(">HI", len(s), 0) + s.encode("utf-16-be")
    names = name("d") + name("a.png") + name("b.png")
    off_d, off_a, off_b = 0, len(name("d")), len(name("d")) + len(name("a.png"))
    raw_a, raw_b = b"plain-bytes", b"zipped-bytes" * 10
    comp_b = struct.pack(">I", len(raw_b)) + zlib.compress(raw_b)
    data = struct.pack(">I", len(raw_a)) + raw_a + struct.pack(">I", len(comp_b)) + comp_b
    da, db = 0, 4 + len(raw_a)
    tree = (struct.pack(">IHII", 0, 2, 1, 1)             # root: 1 child at 1
            + struct.pack(">IHII", off_d, 2, 2, 2)       # d: 2 children at 2
            + struct.pack(">IHHHI", off_a, 0, 0, 0, da)  # a.png
            + struct.pack(">IHHHI", off_b, 1, 0, 0, db))  # b.png, zlib
    head = 20
    blob = (b"qres" + struct.pack(">IIII", 1, head, head + len(tree),
                                  head + len(tree) + len(data)) + tree + data + names)
    got = dict(read_rcc(blob))
    assert got == {"d/a.png": raw_a, "d/b.png": raw_b}


def test_tile_crops_share_their_photos_split(rows):
    by_photo = {}
    for r in rows:
        if "#tile-" in r["original_path"]:
            base = r["original_path"].split("#tile-", 1)[0]
            by_photo.setdefault((r["package"], base), set()).add(r["split"])
    for key, splits in by_photo.items():
        assert len(splits) == 1, key
    assert bc.split_of("p", "/a.jpg#tile-r0c1") == bc.split_of("p", "/a.jpg")


def test_tile_crops_cover_the_image():
    im = Image.new("RGB", (101, 51), "red")
    got = bc.tile_crops(im, (2, 2))
    assert [s for s, _ in got] == ["#tile-r0c0", "#tile-r0c1", "#tile-r1c0", "#tile-r1c1"]
    assert sum(c.size[0] * c.size[1] for _, c in got) == 101 * 51
    assert bc.tile_crops(im, None) == [("", im)]


def test_opaque_ground_keeps_opaque_rows(tmp_path):
    im = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    im.paste((10, 200, 30, 255), (0, 12, 40, 30))
    p = tmp_path / "tile.png"
    im.save(p)
    g = bc.opaque_ground(p)
    assert g.mode == "RGB" and g.size == (40, 18)


def test_eet_reader_finds_jpeg_entries(tmp_path):
    """A hand-built Eet (format 2) file with one JPEG and one compressed entry."""
    import struct
    buf = io.BytesIO()
    Image.new("RGB", (16, 8), (200, 30, 30)).save(buf, "JPEG")
    jpg = buf.getvalue()
    names = [b"edje/images/0\0", b"edje/file\0"]
    blobs = [jpg, b"zzz"]
    flags = [0, 1]
    head = 12 + 24 * len(names)
    name_off = head
    data_off = head + sum(len(n) for n in names)
    dir_, noff, doff = b"", name_off, data_off
    for n, b, f in zip(names, blobs, flags):
        dir_ += struct.pack(">6I", doff, len(b), len(b), noff, len(n), f)
        noff += len(n)
        doff += len(b)
    data = struct.pack(">III", bc.EET_MAGIC, len(names), 0) + dir_ + b"".join(names) + b"".join(blobs)
    assert list(bc.eet_entries(data)) == [("edje/images/0", jpg)]
    with pytest.raises(ValueError):
        list(bc.eet_entries(b"\0" * 16))
