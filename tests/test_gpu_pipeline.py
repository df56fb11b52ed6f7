"""The colorize step's CUDA path (colorbatch.gpu_pipeline) against the CPU path.

Its pieces run on any device, so the CPU checks them here (torchvision decodes JPEGs on
the CPU too); the tests marked ``cuda`` run the real path where CUDA exists.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from colorbatch import gpu_pipeline, kernels  # noqa: E402
from colorbatch.colorizer import L_SCALE, prepare_item  # noqa: E402
from colorbatch.item import Item  # noqa: E402

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_lq_on_the_device_matches_the_cpu_kernel():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    rgb[0, :3] = [[0, 0, 0], [255, 255, 255], [1, 2, 3]]
    got = gpu_pipeline.lq_from_rgb8_tensor(torch.from_numpy(rgb).permute(2, 0, 1)).numpy()
    assert np.abs(got - kernels.lq_from_rgb8(rgb).astype(np.int64)).max() <= 2  # 0.003 L*
    gray = rgb[..., 0]
    got = gpu_pipeline.lq_from_rgb8_tensor(torch.from_numpy(gray)[None]).numpy()
    assert np.abs(got - kernels.lq_from_rgb8(gray).astype(np.int64)).max() <= 2


def _files(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    base = np.linspace(0, 255, 64 * 48 * 3).reshape(48, 64, 3).astype(np.uint8)
    paths = []
    for i, (name, kw) in enumerate([("a.jpg", {}), ("b.png", {}), ("c.jpg", {"gray": True}),
                                    ("d.jpg", {"rotated": True}), ("e.jpeg", {})]):
        arr = np.clip(base.astype(int) + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
        im = Image.fromarray(arr).convert("L") if kw.get("gray") else Image.fromarray(arr)
        p = tmp_path / name
        if kw.get("rotated"):
            exif = Image.Exif()
            exif[0x0112] = 6
            im.save(p, quality=92, exif=exif)
        else:
            im.save(p, quality=92) if p.suffix != ".png" else im.save(p)
        paths.append(p)
    return paths


def _run(paths, device, tmp_path):
    cpu_calls = []

    def cpu(items):
        cpu_calls.extend(it.id for it in items)
        return ((it, prepare_item(it, 32, compact=False)) for it in items)

    items = [Item(id=p.name, path=p, root=tmp_path) for p in paths]
    out = list(gpu_pipeline.prepared(items, 32, device, True, cpu, batch=2))
    return items, out, cpu_calls


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=cuda)])
def test_prepared_matches_prepare_item_and_keeps_the_order(tmp_path, device):
    paths = _files(tmp_path)
    items, out, cpu_calls = _run(paths, device, tmp_path)
    assert [it.id for it, _ in out] == [it.id for it in items]
    assert cpu_calls == ["b.png", "d.jpg"]  # not a JPEG; an EXIF rotation to apply
    for (item, prep), p in zip(out, paths):
        ref = prepare_item(Item(id=p.name, path=p, root=tmp_path), 32, compact=False)
        Lq = prep["Lq"].cpu().numpy().view(np.uint16).astype(np.int64)
        Lref = ref["Lq"].numpy().view(np.uint16).astype(np.int64)
        tol = 0.01 if device == "cpu" else 1.5  # nvjpeg rounds its IDCT differently
        assert np.abs(Lq - Lref).max() / L_SCALE <= tol, p.name
        assert prep["small"].shape == ref["small"].shape
        assert (prep["small"].cpu() - ref["small"]).abs().max() <= tol / 100 + 1e-4
        for key in ("input_format", "file_mode", "width", "height", "input_mode"):
            assert prep["meta"][key] == ref["meta"][key], (p.name, key)
        if p.name not in cpu_calls:  # the colour truth, compact as from a worker; none for gray
            assert (prep["rgb"] is None) == (p.name == "c.jpg")


def test_a_batch_the_decoder_refuses_goes_to_the_cpu(tmp_path, monkeypatch):
    paths = _files(tmp_path)

    def refuse(items, device):
        raise RuntimeError("nvjpeg: unsupported")

    monkeypatch.setattr(gpu_pipeline, "_decode", refuse)
    items, out, cpu_calls = _run(paths, "cpu", tmp_path)
    assert [it.id for it, _ in out] == [it.id for it in items]
    assert sorted(cpu_calls) == sorted(it.id for it in items)


def test_only_cuda_takes_the_path(monkeypatch):
    assert not gpu_pipeline.wanted("cpu")
    monkeypatch.setenv("COLORBATCH_GPU_DECODE", "0")
    assert not gpu_pipeline.wanted("cuda")
    assert gpu_pipeline.encode_wanted()
    monkeypatch.setenv("COLORBATCH_GPU_ENCODE", "off")
    assert not gpu_pipeline.encode_wanted()


@cuda
def test_colorize_on_cuda_matches_the_cpu_run(tmp_path):
    from colorbatch.models import build_model
    from colorbatch.models.checkpoint import save_checkpoint
    from PIL import Image

    paths = _files(tmp_path / "in")
    model = build_model("efficientnet-lite0", "none", widths=(32, 16, 16, 16, 16))
    ckpt = save_checkpoint(tmp_path / "m.safetensors", model, {"test": True})
    import subprocess
    import sys

    outs = {}
    for dev in ("cpu", "cuda"):
        out = tmp_path / f"out-{dev}"
        r = subprocess.run([sys.executable, "-m", "colorbatch", "colorize", str(tmp_path / "in"), "--out", str(out),
                            "--model", str(ckpt), "--size", "64", "--device", dev], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        outs[dev] = out
    for p in paths:
        a = np.asarray(Image.open(next(outs["cpu"].rglob(p.stem + ".*"))), dtype=np.int64)
        b = np.asarray(Image.open(next(outs["cuda"].rglob(p.stem + ".*"))), dtype=np.int64)
        assert a.shape == b.shape and np.abs(a - b).mean() < 3.0, p.name


# ---- encoding on the device (JPEG outputs), pinned copies to the host ----------------


def _save_opts(fmt=None, quality=95):
    from colorbatch.steps.save import Options

    return Options(out="out", format=fmt, quality=quality)


def test_device_encoding_only_where_save_writes_one_jpeg_quality():
    q = gpu_pipeline.device_jpeg_quality
    assert q("a/b.jpg", [_save_opts()]) == 95
    assert q("a/b.JPEG", [_save_opts(quality=80)]) == 80
    assert q("b.png", [_save_opts()]) is None  # kept as PNG
    assert q("b.tif", [_save_opts("jpg", 90)]) == 90  # format = jpg
    assert q("b.jpg", [_save_opts("png")]) is None
    assert q("b.jpg", [_save_opts("png"), _save_opts(quality=90)]) == 90
    assert q("b.jpg", [_save_opts(quality=90), _save_opts(quality=80)]) is None  # two qualities
    assert q("b.jpg", []) is None  # no save step, or other steps after colorize


def _lq_and_pred(H=37, W=53, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    lq = np.clip((x / W * 0.6 + y / H * 0.4) * 65535 + rng.integers(-300, 300, (H, W)), 0, 65535).astype(np.uint16)
    lq[0, :2] = [0, 65535]  # black and white
    pred = torch.from_numpy(rng.uniform(-0.6, 0.6, (2, 9, 13)).astype(np.float32))
    return lq, pred


def test_compose_on_the_device_matches_the_cpu_recombination_and_encodes():
    from colorbatch.recombine import compose_full_cpu

    lq, pred = _lq_and_pred()
    on_dev = torch.from_numpy(lq.view(np.int16))  # as _prep leaves it (on the GPU there)
    rgb, ab, jpeg = gpu_pipeline.compose(on_dev, pred, want_ab=True, quality=95)
    ref, ref_ab = compose_full_cpu(lq, pred, want_ab=True)
    assert rgb.dtype == np.uint8 and rgb.shape == ref.shape
    assert np.abs(rgb.astype(int) - ref.astype(int)).max() <= 1
    assert np.abs(ab - ref_ab).max() < 1e-3
    assert isinstance(jpeg, bytes) and jpeg[:2] == b"\xff\xd8"
    from io import BytesIO

    from PIL import Image

    back = np.asarray(Image.open(BytesIO(jpeg)).convert("RGB"), dtype=int)
    buf = BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95)  # what the CPU's save encodes
    cpu = np.asarray(Image.open(buf).convert("RGB"), dtype=int)
    assert back.shape == rgb.shape and np.abs(back - cpu).mean() < 1.5
    assert gpu_pipeline.compose(on_dev, pred)[2] is None  # no quality: nothing encoded


def test_an_encoder_error_is_returned_not_raised(monkeypatch):
    def broken(rgb, quality):
        raise RuntimeError("nvjpeg: out of memory")

    monkeypatch.setattr(gpu_pipeline, "encode_jpeg_bytes", broken)
    lq, pred = _lq_and_pred()
    rgb, _, jpeg = gpu_pipeline.compose(torch.from_numpy(lq.view(np.int16)), pred, quality=95)
    assert isinstance(jpeg, RuntimeError) and rgb.shape == (37, 53, 3)


def test_the_step_falls_back_to_the_cpu_encoder_once_with_a_warning(monkeypatch):
    from collections import deque
    from concurrent.futures import Future
    from types import SimpleNamespace

    from colorbatch.steps.colorize import ColorizeStep

    calls = []

    def broken(rgb, quality):
        calls.append(quality)
        raise RuntimeError("nvjpeg: unsupported")

    monkeypatch.setattr(gpu_pipeline, "encode_jpeg_bytes", broken)
    warnings = []
    step = SimpleNamespace(saves=[_save_opts()], encode_error=None, encode_warned=False, keep_arrays=False,
                           task=None, options=SimpleNamespace(max_batch_pixels=10**9),
                           ctx=SimpleNamespace(warn=warnings.append, fail=None))
    lq, pred = _lq_and_pred()
    items = [Item(id=f"{i}.jpg") for i in range(3)]
    for it in items:
        rgb, _ = ColorizeStep._compose_on_device(step, it, torch.from_numpy(lq.view(np.int16)), pred)
        assert it.encoded is None and rgb.shape == (37, 53, 3)
    assert calls == [95]  # tried once, then the CPU encodes
    pending = deque()
    for it in items:
        f = Future()
        f.set_result(None)
        pending.append((it, f, 0))
    assert list(ColorizeStep._drain(step, pending, keep=0)) == items
    assert len(warnings) == 1 and "nvjpeg: unsupported" in warnings[0] and "CPU" in warnings[0]


def test_an_encoded_jpeg_is_written_as_write_image_writes_one(tmp_path):
    from PIL import Image

    from colorbatch.image_write import read_metadata, with_exif, write_encoded_jpeg, write_image

    rgb = np.asarray(Image.linear_gradient("L").resize((64, 48)).convert("RGB"))
    rgb = np.ascontiguousarray(np.stack([rgb[..., 0], rgb[..., 0][::-1], 255 - rgb[..., 0]], -1))
    meta = {"model": "m@1", "source": "a/b.jpg", "steps": ["load", "colorize"], "runtime": "torch"}
    write_image(tmp_path / "cpu.jpg", rgb, metadata=meta, quality=95)
    write_encoded_jpeg(tmp_path / "dev.jpg", gpu_pipeline.encode_jpeg_bytes(torch.from_numpy(rgb), 95), metadata=meta)
    assert read_metadata(tmp_path / "dev.jpg") == read_metadata(tmp_path / "cpu.jpg") == meta
    with Image.open(tmp_path / "cpu.jpg") as a, Image.open(tmp_path / "dev.jpg") as b:
        assert a.getexif().get(0x0131) == b.getexif().get(0x0131)
        pa, pb = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    assert pa.shape == pb.shape == rgb.shape and np.abs(pa - pb).mean() < 1.5
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(ValueError):
        with_exif(b"\x89PNG....", meta)


def _save_items(tmp_path, items, **save):
    from colorbatch import hookimpl, registry
    from colorbatch.plugins import make_plugin_manager
    from colorbatch.recipe import build_plan
    from colorbatch.runner import run_plan
    from colorbatch.steps import Step, StepDef
    from pydantic import BaseModel, ConfigDict

    class Opts(BaseModel):
        model_config = ConfigDict(extra="forbid")

    class Give(Step):
        def run(self, stream):
            yield from stream
            yield from items

    class Plugin:
        @hookimpl
        def colorbatch_register_steps(self):
            return [StepDef("give", lambda: Opts, Give)]

    pm = make_plugin_manager(no_plugins=True, extra=[Plugin()])
    raw = {"schema_version": 1, "name": "t", "run_dir": str(tmp_path / "run"),
           "steps": [{"uses": "give"}, {"uses": "save", "with": {"out": str(tmp_path / "out"), **save}}]}
    summary = run_plan(build_plan(raw, registry.steps(pm), label="t", base_dir=tmp_path), pm, show_progress=False)
    import json

    events = [json.loads(x) for x in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    return summary, {e["item"]: e.get("encoded") for e in events if e["event"] == "saved"}


def test_save_writes_the_device_bytes_only_where_they_are_what_it_would_write(tmp_path):
    from colorbatch.item import Encoded

    def item(name, quality=95, stale=False):
        out = np.full((24, 32, 3), 40, np.uint8)
        white = gpu_pipeline.encode_jpeg_bytes(torch.full((24, 32, 3), 255, dtype=torch.uint8), 95)
        it = Item(id=name, output=out, meta={"index": 0})
        it.encoded = Encoded("JPEG", quality, white, pixels=out.copy() if stale else out)
        return it

    items = [item("a.jpg"), item("b.png"), item("c.jpg", quality=80), item("d.jpg", stale=True)]
    summary, encoded = _save_items(tmp_path, items)
    assert summary["ok"] == 4
    assert encoded == {"a.jpg": "device", "b.png": None, "c.jpg": None, "d.jpg": None}
    from PIL import Image

    means = {p.name: np.asarray(Image.open(p)).mean() for p in (tmp_path / "out").glob("*.*g")}
    assert means["a.jpg"] > 250 and all(abs(means[n] - 40) < 3 for n in ("b.png", "c.jpg", "d.jpg"))


@cuda
def test_jpeg_outputs_are_encoded_on_the_gpu_and_match_the_cpu_run(tmp_path):
    import json
    import subprocess
    import sys

    from PIL import Image

    from colorbatch.image_write import read_metadata
    from colorbatch.models import build_model
    from colorbatch.models.checkpoint import save_checkpoint

    paths = _files(tmp_path / "in")
    model = build_model("efficientnet-lite0", "none", widths=(32, 16, 16, 16, 16))
    ckpt = save_checkpoint(tmp_path / "m.safetensors", model, {"test": True})
    outs, saved = {}, {}
    for dev in ("cpu", "cuda"):
        out, run = tmp_path / f"out-{dev}", tmp_path / f"run-{dev}"
        r = subprocess.run([sys.executable, "-m", "colorbatch", "colorize", str(tmp_path / "in"), "--out", str(out),
                            "--model", str(ckpt), "--size", "64", "--device", dev, "--runtime", "torch",
                            "--run-dir", str(run)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "encoding JPEGs on the GPU failed" not in r.stderr
        outs[dev] = out
        events = [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()]
        saved[dev] = {Path(e["item"]).name: e.get("encoded") for e in events if e["event"] == "saved"}
    # JPEG outputs of JPEG inputs the GPU decoded (d.jpg has an EXIF rotation: the CPU's)
    assert {n for n, e in saved["cuda"].items() if e == "device"} >= {"a.jpg", "c.jpg", "e.jpeg"}
    assert saved["cuda"]["b.png"] is None and not any(saved["cpu"].values())
    for p in paths:
        a_path, b_path = next(outs["cpu"].rglob(p.stem + ".*")), next(outs["cuda"].rglob(p.stem + ".*"))
        a = np.asarray(Image.open(a_path).convert("RGB"), dtype=np.int64)
        b = np.asarray(Image.open(b_path).convert("RGB"), dtype=np.int64)
        assert a.shape == b.shape and np.abs(a - b).mean() < 3.0, p.name
        ma, mb = read_metadata(a_path), read_metadata(b_path)
        assert ma["source"] == mb["source"] and ma["model"] == mb["model"], p.name
