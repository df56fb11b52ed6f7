"""The colorize step's CUDA path (colorbatch.gpu_pipeline) against the CPU path.

Its pieces run on any device, so the CPU checks them here (torchvision decodes JPEGs on
the CPU too); the tests marked ``cuda`` run the real path where CUDA exists.
"""
from __future__ import annotations

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
