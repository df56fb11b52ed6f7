"""ONNX export (`colorbatch export`) and the onnxruntime runtime (`colorize --runtime onnxruntime`)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

ENV = {**os.environ, "COLORBATCH_NO_PLUGINS": "1", "COLUMNS": "200", "OMP_NUM_THREADS": "1"}


def _needs_onnx():
    pytest.importorskip("onnx", reason="pip install -e '.[test]' (or colorbatch[onnx]) installs onnx")
    pytest.importorskip("onnxruntime", reason="pip install -e '.[test]' (or colorbatch[onnx]) installs onnxruntime")


def _model(encoder, head="classify", hints=False, widths=(32, 16, 16, 16, 16)):
    """An untrained model whose every part counts: hint layers and the head made non-trivial."""
    from colorbatch.models import build_model

    torch.manual_seed(0)
    model = build_model(encoder, "none", head=head, hints=hints, widths=widths).eval()
    with torch.no_grad():
        model.decoder.head.weight.mul_(0.2)
        if hints:
            for m in list(model.decoder.hint_local) + [model.decoder.hint_global[-1]]:
                m.weight.normal_(0, 0.05)
                m.bias.normal_(0, 0.05)
    return model


def _checkpoint(tmp_path, model, calibration=None):
    from colorbatch.models.checkpoint import json_path, save_checkpoint

    path = save_checkpoint(tmp_path / f"{model.arch['name']}.safetensors", model, {"test": True})
    if calibration:
        meta = json.loads(json_path(path).read_text())
        meta["calibration"] = calibration
        json_path(path).write_text(json.dumps(meta))
    return path


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "colorbatch", *map(str, args)], capture_output=True,
                          text=True, env=env or ENV, timeout=600)


@pytest.mark.parametrize("encoder,head,hints", [("efficientnet-lite0", "classify", True),
                                                ("resnet50", "classify", False),
                                                ("efficientnet-lite0", "regress", False)])
def test_export_and_verify_both_encoders(tmp_path, encoder, head, hints):
    _needs_onnx()
    from colorbatch.export import VERIFY_SHAPES, export_onnx, verify
    from colorbatch.onnx_runtime import OnnxModel

    widths = None if encoder == "resnet50" else (32, 16, 16, 16, 16)
    ckpt = _checkpoint(tmp_path, _model(encoder, head, hints, widths or (256, 128, 64, 48, 32)),
                       {"temperature": 0.7, "chroma": 1.2})
    done = export_onnx(ckpt, tmp_path / "m.onnx")
    assert done.path.is_file() and done.seconds < 120
    m = OnnxModel(done.path)
    assert m.meta["id"] == json.loads(ckpt.with_suffix(".json").read_text())["id"]
    assert m.meta["model"]["encoder"] == encoder and m.multiple == 32
    assert m.meta["calibration"]["chroma"] == 1.2
    assert m.temperature == (0.7 if head == "classify" else 1.0)
    assert m.meta["onnx"]["opset"] == 17 and m.meta["onnx"]["precision"] == "fp32"
    assert m.accepts_hints is hints
    assert [i.name for i in m.session.get_inputs()] == ["L01"] + (["hint_ab", "hint_mask", "hint_glob"] if hints else [])
    # dynamic shapes: two sizes and two batch sizes through the one file
    assert len({(h, w) for _, h, w in VERIFY_SHAPES}) == 2 and len({b for b, _, _ in VERIFY_SHAPES}) == 2
    check = verify(ckpt, done.path)
    assert check["max_abs"] < 1e-4, check
    assert len(check["cases"]) == 2 and check["hints"] is hints


def test_all_zero_hint_inputs_are_no_hints(tmp_path):
    _needs_onnx()
    from colorbatch.export import export_onnx, sample_inputs
    from colorbatch.onnx_runtime import OnnxModel

    model = _model("efficientnet-lite0", hints=True)
    done = export_onnx(model, tmp_path / "h.onnx")
    L = sample_inputs(2, 64, 96, False)[0]
    with torch.inference_mode():
        ref = model(L, temperature=1.0)
    got = OnnxModel(done.path)(L, temperature=1.0)  # no hints given: zeros are passed
    assert float((got - ref).abs().max()) < 1e-4


def test_export_cli_verifies_and_says_what_it_wrote(tmp_path):
    _needs_onnx()
    ckpt = _checkpoint(tmp_path, _model("efficientnet-lite0"))
    out = tmp_path / "model.onnx"
    r = cli("export", ckpt, "--format", "onnx", "--out", out, "--verify", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert res["ok"] and res["verify"]["max_abs"] < 1e-3 and res["opset"] == 17 and out.is_file()
    r = cli("export", ckpt, "--format", "tflite", "--out", out)
    assert r.returncode == 2 and "only onnx" in r.stderr


def test_fp16_export_records_its_precision(tmp_path):
    _needs_onnx()
    from colorbatch.export import export_onnx, sample_inputs

    model = _model("efficientnet-lite0")
    done = export_onnx(model, tmp_path / "half.onnx", fp16=True)
    assert done.meta["onnx"]["precision"] == "fp16"
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is left as it was
    from colorbatch.onnx_runtime import OnnxModel

    try:
        m = OnnxModel(done.path)
    except Exception as exc:  # noqa: BLE001 - a CPU build without fp16 kernels
        pytest.skip(f"onnxruntime on this CPU cannot run fp16 graphs: {exc}")
    L = sample_inputs(1, 64, 64, False)[0]
    with torch.inference_mode():
        ref = model(L, temperature=1.0)
    assert float((m(L, temperature=1.0) - ref).abs().max()) < 2e-2


def _png_inputs(folder, n=3):
    from colorbatch.testing import save_tiny_image

    folder.mkdir(parents=True, exist_ok=True)
    sizes = [(96, 64), (50, 70), (128, 128)]
    for i in range(n):
        save_tiny_image(folder / f"img{i}.png", size=sizes[i % 3], mode="L" if i % 2 else "RGB",
                        pattern="noise" if i == 2 else "gradient", seed=i)
    return sorted(folder.glob("*.png"))


def test_colorize_runtime_onnxruntime_matches_torch(tmp_path):
    _needs_onnx()
    from colorbatch import color
    from colorbatch.images import read_image

    ckpt = _checkpoint(tmp_path, _model("efficientnet-lite0", hints=True), {"temperature": 0.8, "chroma": 1.1})
    src = tmp_path / "in"
    files = _png_inputs(src)
    env = {**ENV, "COLORBATCH_CACHE": str(tmp_path / "cache")}
    outs = {}
    for runtime in ("torch", "onnxruntime"):
        outs[runtime] = tmp_path / runtime
        r = cli("colorize", src, "--out", outs[runtime], "--model", ckpt, "--size", "96", "-b", "2",
                "--workers", "0", "--runtime", runtime, "--json", env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        assert json.loads(r.stdout)["ok"] == len(files)
    assert list((tmp_path / "cache" / "onnx").glob("*.onnx"))  # exported once, into the cache
    from colorbatch.image_write import read_metadata

    for runtime, out in outs.items():  # each output's provenance names what ran the network
        assert {read_metadata(out / f.name).get("runtime") for f in files} == {runtime}
    for f in files:
        a = read_image(outs["torch"] / f.name).pixels
        b = read_image(outs["onnxruntime"] / f.name).pixels
        assert a.shape == b.shape
        assert int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1, f.name  # a*b* within tolerance
        d = read_image(f, max_pixels=0)
        L_in = color.rgb_to_L_np(d.pixels) if d.is_color else color.gray_to_L_np(d.pixels)
        L_out = color.rgb_to_L_np(b)
        assert float(np.abs(L_out - L_in).mean()) < 0.5, f.name  # L* is the input's

    # an exported file as --model runs on onnxruntime without asking
    onnx_file = next((tmp_path / "cache" / "onnx").glob("*.onnx"))
    r = cli("colorize", src, "--out", tmp_path / "direct", "--model", onnx_file, "--size", "96", "--workers", "0",
            "--json", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    for f in files:
        assert np.array_equal(read_image(tmp_path / "direct" / f.name).pixels,
                              read_image(outs["onnxruntime"] / f.name).pixels)


def test_colorizer_runs_the_same_on_both_runtimes(tmp_path, monkeypatch):
    _needs_onnx()
    from colorbatch.colorizer import Colorizer
    from colorbatch.export import sample_inputs

    monkeypatch.setenv("COLORBATCH_CACHE", str(tmp_path / "cache"))
    ckpt = _checkpoint(tmp_path, _model("efficientnet-lite0"), {"temperature": 0.6, "chroma": 1.3})
    smalls = [sample_inputs(1, h, w, False, seed=h)[0][0] for h, w in ((40, 64), (64, 50), (33, 17))]
    ref = Colorizer(str(ckpt), "cpu", 64, 2).predict_small(smalls)
    col = Colorizer(str(ckpt), "cpu", 64, 2, runtime="onnxruntime")
    assert type(col.model).__name__ == "OnnxModel" and col.chroma == 1.3
    for a, b in zip(ref, col.predict_small(smalls)):  # onnxruntime without hints answers in numpy
        assert isinstance(b, np.ndarray) and a.shape == b.shape and float(np.abs(a.numpy() - b).max()) < 1e-4


def test_without_onnxruntime_the_runtime_fails_with_one_line(tmp_path, monkeypatch, capsys):
    from colorbatch.cli import main
    from colorbatch.testing import save_tiny_image

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    save_tiny_image(tmp_path / "in" / "a.png")
    with pytest.raises(SystemExit) as exc:
        main(["--no-plugins", "colorize", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
              "--runtime", "onnxruntime", "--workers", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install colorbatch[onnx]" in err[0], err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.png"))


def test_runtime_option_is_checked():
    from colorbatch.errors import ColorbatchError
    from colorbatch.onnx_runtime import uses_onnxruntime

    assert uses_onnxruntime("m.onnx") and uses_onnxruntime("m.safetensors", "onnxruntime")
    assert not uses_onnxruntime(Path("m.safetensors"))
    with pytest.raises(ColorbatchError, match="torch, onnxruntime"):
        uses_onnxruntime("m.safetensors", "tensorrt")


def test_the_plain_python_example_in_docs_runs(tmp_path):
    """docs/deploy.md's example: onnxruntime and Pillow alone colorize a photo with an export."""
    _needs_onnx()
    import re

    from PIL import Image

    from colorbatch.export import export_onnx
    from colorbatch.testing import save_tiny_image

    doc = (Path(__file__).resolve().parents[1] / "docs" / "deploy.md").read_text(encoding="utf-8")
    code = re.findall(r"```python\n(.*?)\n```", doc, re.S)[0]
    assert len(code.splitlines()) <= 20 and "colorbatch" not in code.replace("`colorbatch export`", "")
    export_onnx(_model("efficientnet-lite0", hints=True), tmp_path / "model.onnx")
    save_tiny_image(tmp_path / "photo.jpg", size=(90, 60))
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert Image.open(tmp_path / "photo-colour.jpg").size == (90, 60)


def test_export_refuses_what_it_cannot_do(tmp_path):
    from colorbatch.errors import ColorbatchError
    from colorbatch.export import export_onnx

    model = _model("efficientnet-lite0", hints=True)
    with pytest.raises(ColorbatchError, match="must end in .onnx"):
        export_onnx(model, tmp_path / "model.bin")
    with pytest.raises(ColorbatchError, match="torchscript"):
        export_onnx(model, tmp_path / "model.onnx", exporter="dynamo")
    with pytest.raises(ColorbatchError, match="torchscript, dynamo"):
        export_onnx(model, tmp_path / "model.onnx", exporter="tvm")
