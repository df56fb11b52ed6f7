"""The colorize step and `colorbatch colorize`: L* kept, sizes kept, failures, resume, streaming."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from colorbatch.errors import ColorbatchError  # noqa: E402
from colorbatch.item import Item, flush_marker  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _awkward import make_awkward_inputs  # noqa: E402

ENV = {**os.environ, "COLORBATCH_NO_PLUGINS": "1", "COLUMNS": "200", "OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """An untrained small model whose a*b* stay moderate (speed and plumbing, not quality)."""
    from colorbatch.models import build_model
    from colorbatch.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_model("efficientnet-lite0", "none", widths=(32, 16, 16, 16, 16))
    with torch.no_grad():
        model.decoder.head.weight.mul_(0.2)
    return save_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors", model, {"test": True})


def cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "colorbatch", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env or ENV, timeout=300)


def _digest(folder):
    out = {}
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _input_L(path):
    from colorbatch import color
    from colorbatch.images import read_image

    d = read_image(path, max_pixels=0)
    return color.rgb_to_L_np(d.pixels) if d.is_color else color.gray_to_L_np(d.pixels)


def _find_output(out, name, names=()):
    rel = Path(name)
    if (out / rel).is_file():
        return out / rel
    found = [p for p in (out / rel.parent).glob(rel.stem + ".*")
             if not p.name.startswith(".") and str(p.relative_to(out)) not in names]
    assert len(found) == 1, (name, found)
    return found[0]


def test_colorize_cli_on_awkward_folder(tmp_path, model_path):
    from colorbatch import color
    from colorbatch.images import read_image

    src = tmp_path / "in"
    good, bad = make_awkward_inputs(src)
    before = _digest(src)
    out = tmp_path / "out"
    r = cli("colorize", src, "--out", out, "--model", model_path, "--size", "64", "-b", "4",
            "--workers", "1", "--json")
    assert r.returncode == 1, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert summary["ok"] == len(good) and summary["failed"] == len(bad), r.stderr[-3000:]
    failures = " ".join(f["item"] + " " + f["error"] for f in summary["failures"])
    for name, reason in bad.items():
        assert name in failures and reason in failures, (name, failures)
    for name, (w, h) in good.items():
        o = _find_output(out, name, good)
        dec = read_image(o)
        assert dec.is_color and dec.size == (w, h), name
        L_out = color.rgb_to_L_np(dec.pixels)
        L_in = _input_L(src / name)
        diff = np.abs(L_out - L_in)
        lossy = o.suffix.lower() in (".jpg", ".jpeg", ".webp")
        assert diff.mean() < (1.5 if lossy else 0.5), (name, diff.mean())
        assert np.percentile(diff, 99) < (6 if lossy else 1.5), (name, diff.max())
    assert _digest(src) == before  # inputs untouched

    # rerun through a recipe with the same options: everything is skipped, nothing rewritten
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    recipe = tmp_path / "colorize.toml"
    recipe.write_text(
        "schema_version = 1\nname = \"again\"\n"
        f"[[steps]]\nuses = \"load\"\nwith = {{ source = {json.dumps(str(src))} }}\n"
        f"[[steps]]\nuses = \"colorize\"\nwith = {{ model = {json.dumps(str(model_path))}, size = 64, "
        "batch_size = 4, workers = 0 }\n"
        f"[[steps]]\nuses = \"save\"\nwith = {{ out = {json.dumps(str(out))} }}\n"
    )
    r2 = cli("run", recipe, "--json", "--run-dir", tmp_path / "run")
    s2 = json.loads(r2.stdout)
    assert s2["skipped"] == len(good) and s2["ok"] == 0, r2.stderr[-2000:]
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p.exists() and p.suffix != ".jsonl")
    assert _digest(src) == before


def test_colorize_with_an_empty_cache_uses_the_shipped_default(tmp_path):
    from colorbatch.models.checkpoint import shipped_model
    from colorbatch.testing import save_tiny_image

    if shipped_model() is None:
        pytest.skip("no shipped default model in this checkout")
    save_tiny_image(tmp_path / "in" / "a.png", mode="L")
    env = {**ENV, "COLORBATCH_CACHE": str(tmp_path / "cache")}
    env.pop("COLORBATCH_MODEL", None)
    r = cli("colorize", tmp_path / "in", "--out", tmp_path / "out", "--size", "64", env=env)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert list((tmp_path / "out").rglob("a.png"))


def test_without_any_model_the_error_says_how_to_get_one(tmp_path, monkeypatch):
    from colorbatch.errors import ColorbatchError
    from colorbatch.models import checkpoint

    monkeypatch.setenv("COLORBATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COLORBATCH_MODEL", raising=False)
    monkeypatch.setattr(checkpoint, "shipped_model", lambda: None)
    with pytest.raises(ColorbatchError) as e:
        checkpoint.discover_model_why(None)
    msg = str(e.value)
    assert "colorbatch run recipes/quickstart.toml" in msg and "COLORBATCH_MODEL" in msg


def _ctx(step_with, world_size=1, rank=0):
    from colorbatch import registry
    from colorbatch.plugins import make_plugin_manager
    from colorbatch.recipe import build_plan
    from colorbatch.runner import RunContext

    pm = make_plugin_manager(no_plugins=True)
    raw = {"schema_version": 1, "name": "t", "steps": [{"uses": "colorize", "with": step_with}]}
    plan = build_plan(raw, registry.steps(pm), label="t", base_dir=Path.cwd())
    plan.run_dir = None
    ctx = RunContext(plan, pm, show_progress=False, write_run_files=False)
    ctx.world_size, ctx.rank = world_size, rank
    ctx.current = plan.steps[0]
    return ctx, plan.steps[0]


def _decoded_item(i, h=20, w=30):
    L = np.linspace(0, 100, h * w, dtype=np.float32).reshape(h, w)
    return Item(id=f"x{i}.png", L=L.copy(), meta={"index": i})


def test_stream_flush_marker_and_predecoded_items(model_path):
    ctx, cfg = _ctx({"model": str(model_path), "size": 32, "batch_size": 8, "workers": 0})
    step = cfg.stepdef.factory(cfg.options, ctx)
    pulled = []

    def source():
        for i in range(3):
            pulled.append(i)
            yield _decoded_item(i)
        pulled.append("marker")
        yield flush_marker()
        pulled.append(3)
        yield _decoded_item(3, 7, 50)

    seen = []
    for item in step.run(source()):
        if item.is_marker:
            seen.append("marker")
            assert 3 not in pulled  # held items were processed before the source went on
            continue
        seen.append(item.meta["index"])
        assert item.output.shape == item.L.shape + (3,) and item.output.dtype == np.uint8
        assert item.ab.shape == item.L.shape + (2,)
        assert item.meta["model"] == ctx.state["model_id"]
        ref = _decoded_item(item.meta["index"], *item.L.shape).L
        assert np.abs(item.L - ref).max() < 2e-3
    assert seen == [0, 1, 2, "marker", 3]
    assert ctx.state["model"] == str(model_path)


def test_sharding_by_rank(model_path):
    ctx, cfg = _ctx({"model": str(model_path), "size": 32, "workers": 0}, world_size=2, rank=1)
    step = cfg.stepdef.factory(cfg.options, ctx)
    got = [it.meta["index"] for it in step.run(iter([_decoded_item(i) for i in range(5)]))]
    assert got == [1, 3]


def test_workers_decode_and_report_failures(tmp_path, model_path):
    from colorbatch.testing import save_tiny_image

    items = []
    for i in range(4):
        p = save_tiny_image(tmp_path / f"g{i}.png", size=(40 + i, 30), mode="L", seed=i)
        items.append(Item(id=p.name, path=p, root=tmp_path, meta={"index": i}))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    items.insert(2, Item(id="bad.png", path=bad, root=tmp_path, meta={"index": 9}))
    ctx, cfg = _ctx({"model": str(model_path), "size": 32, "batch_size": 3, "workers": 2, "chunk": 3})
    step = cfg.stepdef.factory(cfg.options, ctx)
    out = list(step.run(iter(items)))
    assert [o.id for o in out] == ["g0.png", "g1.png", "g2.png", "g3.png"]
    assert [o.output.shape[:2] for o in out] == [(30, 40 + i) for i in range(4)]
    assert len(ctx.failures) == 1 and "bad.png" in ctx.failures[0]["item"]


def test_colorizer_api(model_path):
    from colorbatch.colorizer import Colorizer

    cz = Colorizer(str(model_path), "cpu", size=32, batch_size=2)
    again = Colorizer(str(model_path), "cpu", size=32, batch_size=2)
    assert cz.model_id == again.model_id and cz.model is again.model  # loaded once
    Ls = [np.full((10, 17), 50.0, np.float32), np.linspace(0, 100, 300, dtype=np.float32).reshape(20, 15)]
    abs_ = cz.predict_ab(Ls)
    assert [a.shape for a in abs_] == [(10, 17, 2), (20, 15, 2)]
    rgb = cz.compose(Ls[1], abs_[1])
    assert rgb.shape == (20, 15, 3) and rgb.dtype == np.uint8
    from colorbatch import color

    assert np.abs(color.rgb_to_L_np(rgb / 255.0) - Ls[1]).mean() < 0.5


def test_unknown_device_is_one_line(model_path):
    with pytest.raises(ColorbatchError, match="unknown"):
        _ctx({"model": str(model_path), "device": "tpu"})[1].stepdef.factory(
            *(lambda c: (c[1].options, c[0]))(_ctx({"model": str(model_path), "device": "tpu"})))


def test_predecoded_colour_ground_truth_is_kept_exactly(model_path):
    ctx, cfg = _ctx({"model": str(model_path), "size": 32, "workers": 0})
    step = cfg.stepdef.factory(cfg.options, ctx)
    rgb = np.random.default_rng(0).random((12, 9, 3)).astype(np.float32)
    from colorbatch import color

    item = Item(id="c.png", rgb=rgb.copy(), L=color.rgb_to_L_np(rgb), meta={"index": 0})
    (out,) = list(step.run(iter([item])))
    assert np.array_equal(out.rgb, rgb)  # evaluation compares against the untouched original
    assert out.ab.shape == (12, 9, 2) and out.output.shape == (12, 9, 3)


def test_resize_L01_leaves_the_callers_array_alone():
    from colorbatch.colorizer import resize_L01

    L = np.linspace(0, 100, 64 * 48, dtype=np.float32).reshape(48, 64)
    before = L.copy()
    small = resize_L01(L, (24, 32))
    assert tuple(small.shape) == (1, 24, 32)
    assert float(small.max()) <= 1.0 + 1e-6
    np.testing.assert_array_equal(L, before)


def test_chroma_scales_the_prediction_and_changes_the_model_id():
    import torch

    from colorbatch.colorizer import Colorizer
    from colorbatch.models import build_model

    torch.manual_seed(0)
    model = build_model("efficientnet-lite0", "none", widths=(32, 16, 16, 16, 16))
    L = np.linspace(20, 80, 64 * 48, dtype=np.float32).reshape(48, 64)
    full = Colorizer(model, "cpu", 64, 2)
    half = Colorizer(model, "cpu", 64, 2, chroma=0.5)
    ab1, ab05 = full.predict_ab([L])[0], half.predict_ab([L])[0]
    assert np.abs(ab1).max() > 0.1
    np.testing.assert_allclose(ab05, ab1 * 0.5, atol=1e-3)
    assert half.model_id == full.model_id + "@chroma0.5"


def test_threads_given_are_used_as_they_are_and_bad_counts_are_refused(monkeypatch, tmp_path, model_path):
    """--threads fixes the network's thread count (the studio's round trip depends on it):
    OMP_NUM_THREADS and the load average bound only the default."""
    from colorbatch.device import configure_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert configure_threads("cpu", 0, 2) == 2 and torch.get_num_threads() == 2
    assert configure_threads("cpu", 0) == 1 and torch.get_num_threads() == 1
    import numpy as np
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((40, 50), 120, np.uint8)).save(src / "a.png")
    r = cli("colorize", src, "--out", tmp_path / "out", "--model", model_path, "--threads", "0")
    assert r.returncode != 0 and "--threads" in r.stderr, r.stderr
    r = cli("colorize", src, "--out", tmp_path / "out", "--model", model_path, "--threads", "2", "--batch-size", "1")
    assert r.returncode == 0 and (tmp_path / "out" / "a.png").is_file(), r.stderr
