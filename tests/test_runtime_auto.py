"""The default runtime (``--runtime auto``): onnxruntime on the CPU, with a path from file to
output that never imports torch (issue 13: the first output within 2 s), and the same
pictures as the torch runtime."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from colorbatch.errors import ColorbatchError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    from colorbatch.models import build_model
    from colorbatch.models.checkpoint import save_checkpoint, update_meta

    torch.manual_seed(0)
    model = build_model("efficientnet-lite0", "none", widths=(32, 16, 16, 16, 16), head="classify", out_stride=4)
    path = save_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors", model, {"test": True})
    update_meta(path, calibration={"temperature": 0.65, "chroma": 1.2})
    return path


def test_auto_is_onnxruntime_on_the_cpu_and_torch_elsewhere(monkeypatch):
    from colorbatch import onnx_runtime as R
    from colorbatch.device import CpuDevice

    monkeypatch.delenv(R.RUNTIME_ENV, raising=False)
    assert R.resolve_runtime("m.safetensors", "auto", CpuDevice()) == "onnxruntime"
    assert R.resolve_runtime("m.safetensors", "auto", torch.device("cpu")) == "onnxruntime"
    assert R.resolve_runtime("m.safetensors", "auto", "cuda:0") == "torch"
    assert R.resolve_runtime("m.safetensors", "torch", "cpu") == "torch"
    assert R.resolve_runtime("m.onnx", "torch", "cpu") == "onnxruntime"  # a .onnx file has no torch form
    monkeypatch.setenv(R.RUNTIME_ENV, "torch")
    assert R.resolve_runtime("m.safetensors", "auto", "cpu") == "torch"
    assert R.resolve_runtime("m.safetensors", "onnxruntime", "cpu") == "onnxruntime"  # explicit wins
    monkeypatch.setenv(R.RUNTIME_ENV, "tensorflow")
    with pytest.raises(ColorbatchError, match=R.RUNTIME_ENV):
        R.resolve_runtime("m.safetensors", "auto", "cpu")
    monkeypatch.delenv(R.RUNTIME_ENV)
    monkeypatch.setattr(R, "installed", lambda name: name != "onnxruntime")
    assert R.resolve_runtime("m.safetensors", "auto", "cpu") == "torch"  # not installed: torch, no error


@pytest.mark.parametrize("shape,target", [((1080, 1920), (144, 256)), ((37, 53), (179, 256)),
                                          ((300, 41), (256, 35)), ((5, 7), (3, 300)), ((64, 64), (64, 64))])
def test_the_numpy_resize_is_torchs_antialiased_resize(shape, target):
    from colorbatch.prepare import pad_batch, pad_batch_np, resize_L01, resize_L01_np

    rng = np.random.default_rng(sum(shape))
    Lq = rng.integers(0, 65536, size=shape).astype(np.uint16)
    Lf = (rng.random(shape, dtype=np.float32) * 100.0).astype(np.float32)
    for L in (Lq, Lf):
        ref = resize_L01(L, target).numpy()
        got = resize_L01_np(L, target)
        assert got.shape == ref.shape == (1, *target) and got.dtype == np.float32
        assert float(np.abs(got - ref).max()) < 1e-5
    smalls = [resize_L01_np(Lf, target), resize_L01_np(Lf[: max(1, shape[0] // 2)], (max(1, target[0] // 2), target[1]))]
    assert np.array_equal(pad_batch_np(smalls, 32), pad_batch([torch.from_numpy(s) for s in smalls], 32).numpy())


def _cli(args, env, block_torch=False):
    code = "import sys\n"
    if block_torch:  # any import of torch fails the run
        code += textwrap.dedent("""
            class NoTorch:
                def find_spec(self, name, path=None, target=None):
                    if name == "torch" or name.startswith("torch."):
                        raise ImportError("torch was imported")
            sys.meta_path.insert(0, NoTorch())
        """)
    code += "from colorbatch.cli import main\nmain(sys.argv[1:])\n"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def test_a_plain_colorize_on_the_cpu_never_imports_torch(tmp_path, tiny_ckpt, tiny_image):
    from colorbatch.export import cached_export
    from colorbatch.images import read_metadata

    env = {k: v for k, v in os.environ.items() if k != "COLORBATCH_RUNTIME"}
    env["COLORBATCH_CACHE"] = str(tmp_path / "cache")
    os.environ["COLORBATCH_CACHE"], old = env["COLORBATCH_CACHE"], os.environ.get("COLORBATCH_CACHE")
    try:
        cached_export(tiny_ckpt)  # the export (made once per model) is the one step that needs torch
    finally:
        if old is None:
            del os.environ["COLORBATCH_CACHE"]
        else:
            os.environ["COLORBATCH_CACHE"] = old
    one = tiny_image("in/one.jpg", size=(90, 61), mode="L", quality=95)
    r = _cli(["colorize", one, "--out", tmp_path / "out", "--model", tiny_ckpt, "--format", "png",
              "--run-dir", tmp_path / "run", "--device", "cpu"], env, block_torch=True)
    assert r.returncode == 0, r.stdout + r.stderr
    out = tmp_path / "out" / "one.png"
    assert out.is_file()
    assert read_metadata(out).get("runtime") == "onnxruntime"
    # a folder, decoded by worker processes, and with a colour input: still no torch
    tiny_image("in/two.png", size=(64, 48), mode="RGB")
    tiny_image("in/three.png", size=(40, 70), mode="L", seed=3)
    r = _cli(["colorize", one.parent, "--out", tmp_path / "folder", "--model", tiny_ckpt, "--format", "png",
              "--run-dir", tmp_path / "runf", "--device", "cpu", "-j", "1", "--json"], env, block_torch=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(f.name for f in (tmp_path / "folder").iterdir() if not f.name.startswith(".")) == \
        ["one.png", "three.png", "two.png"]
    # the same guard stops a run that would need torch: the guard is real
    r = _cli(["colorize", one, "--out", tmp_path / "out2", "--model", tiny_ckpt, "--runtime", "torch",
              "--run-dir", tmp_path / "run2"], env, block_torch=True)
    assert r.returncode != 0 and not (tmp_path / "out2" / "one.jpg").exists()


def _run(run_recipe, write_recipe, src, out, ckpt, name, **colorize):
    rec = write_recipe([{"uses": "load", "with": {"source": str(src)}},
                        {"uses": "colorize", "with": {"model": str(ckpt), "device": "cpu", **colorize}},
                        {"uses": "save", "with": {"out": str(out), "format": "png"}}], name=name)
    return run_recipe(rec)


def test_auto_matches_torch_and_does_not_depend_on_the_size_of_the_run(
        tmp_path, tiny_ckpt, run_recipe, write_recipe, monkeypatch):
    from colorbatch.metrics import rgb_to_lab
    from colorbatch.testing import save_tiny_image

    monkeypatch.setenv("COLORBATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COLORBATCH_RUNTIME", raising=False)
    src = tmp_path / "src"
    for i, (size, mode) in enumerate([((97, 64), "L"), ((64, 120), "RGB"), ((33, 50), "L")]):
        save_tiny_image(src / f"im{i}.png", size=size, mode=mode, seed=i)
    s = _run(run_recipe, write_recipe, src, tmp_path / "auto", tiny_ckpt, "auto", workers=1)
    assert s["ok"] == 3, s
    _run(run_recipe, write_recipe, src, tmp_path / "torch", tiny_ckpt, "torch", runtime="torch", workers=1)
    for i in range(3):  # one image alone (no worker) gives the same pixels as in the run of three
        one = tmp_path / f"one{i}"
        one.mkdir()
        (one / f"im{i}.png").write_bytes((src / f"im{i}.png").read_bytes())
        _run(run_recipe, write_recipe, one, tmp_path / f"alone{i}", tiny_ckpt, f"alone{i}")
    from PIL import Image

    for i in range(3):
        a = np.asarray(Image.open(tmp_path / "auto" / f"im{i}.png").convert("RGB"))
        t = np.asarray(Image.open(tmp_path / "torch" / f"im{i}.png").convert("RGB"))
        alone = np.asarray(Image.open(tmp_path / f"alone{i}" / f"im{i}.png").convert("RGB"))
        assert np.array_equal(a, alone)
        la, lt = rgb_to_lab(a / 255.0), rgb_to_lab(t / 255.0)
        assert float(np.abs(la[..., 0] - lt[..., 0]).max()) <= 0.5
        assert float(np.abs(la[..., 1:] - lt[..., 1:]).max()) <= 1.5


def test_a_model_onnx_cannot_take_runs_on_torch_with_one_warning(tmp_path, tiny_ckpt, tiny_images, run_recipe,
                                                                  write_recipe, monkeypatch):
    from colorbatch import export
    from colorbatch.errors import ExportError

    monkeypatch.setenv("COLORBATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COLORBATCH_RUNTIME", raising=False)

    def fail(*a, **k):
        raise ExportError("export of tiny to ONNX failed (RuntimeError: an op with no ONNX form)")

    monkeypatch.setattr(export, "export_onnx", fail)
    s = _run(run_recipe, write_recipe, tiny_images, tmp_path / "out", tiny_ckpt, "fallback")
    assert s["ok"] == 3, s
    assert s["console"].count("running the network on torch instead") == 1
    assert len(list((tmp_path / "out").rglob("*.png"))) == 3
    # asked for by name, the runtime does not fall back: the error stops the run
    s = _run(run_recipe, write_recipe, tiny_images, tmp_path / "out2", tiny_ckpt, "strict", runtime="onnxruntime")
    assert s["status"] == "failed" and "ONNX" in s["error"] and not (tmp_path / "out2").exists()
