"""The train step: learning, exact resume, clean stop, skipping, losses, data order.

Tiny generated images, EfficientNet-Lite0 with random weights at 64 px, one
thread: each test takes a few seconds.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from colorbatch import hookimpl  # noqa: E402

TINY = dict(model="efficientnet-lite0", encoder_weights="none", size=64, batch_size=2, workers=0,
            threads=1, log_every=1, publish=False)


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch, tmp_path):
    torch.set_num_threads(1)
    monkeypatch.setenv("COLORBATCH_CACHE", str(tmp_path / "cache"))


def smooth_colour_image(path: Path, seed: int, size: int = 80) -> Path:
    """A smooth, saturated random colour field (PNG)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = (rng.random((4, 4, 3)) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(small).resize((size, size), Image.BICUBIC).save(path)
    return path


def colour_folder(root: Path, n: int) -> Path:
    for i in range(n):
        smooth_colour_image(root / f"img{i:02d}.png", seed=i)
    return root


def step_losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in read_log(run_dir) if r["kind"] == "step"]


def epochs(run_dir: Path, partial: bool = False) -> list[dict]:
    return [r for r in read_log(run_dir) if r["kind"] == "epoch" and (partial or not r["partial"])]


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]


def test_tiny_model_overfits_one_image(tmp_path, write_recipe, run_recipe):
    folder = colour_folder(tmp_path / "one", 1)
    opts = dict(TINY, freeze_encoder=False, epochs=1, repeat=60, batch_size=4, lr=3e-3,
                schedule="constant", crop_scale_min=1.0)
    recipe = write_recipe([("load", {"source": str(folder)}), ("train", opts)], name="overfit")
    summary = run_recipe(recipe)
    assert summary["status"] == "ok", summary
    losses = step_losses(Path(summary["run_dir"]))
    assert len(losses) == 15
    assert losses[0] / np.mean(losses[-3:]) > 10, losses
    ckpt = Path(summary["state"]["checkpoint"])
    assert ckpt.is_file() and ckpt.with_suffix(".json").is_file()


def test_resume_reproduces_uninterrupted_losses(tmp_path, write_recipe, run_recipe):
    folder = colour_folder(tmp_path / "imgs", 6)  # 4 train + 2 validation
    opts = dict(TINY, epochs=2, val_fraction=0.34, lr=2e-3)
    full = write_recipe([("load", {"source": str(folder)}), ("train", opts)], name="full")
    s_full = run_recipe(full)
    assert s_full["status"] == "ok"
    ref = Path(s_full["run_dir"])

    # stop after 3 of 4 steps (in the middle of epoch 2), then resume with a worker process
    part = write_recipe([("load", {"source": str(folder)}), ("train", dict(opts, max_steps=3))], name="part")
    s1 = run_recipe(part)
    assert s1["status"] == "ok"
    run = Path(s1["run_dir"])
    assert epochs(run, partial=True)[-1]["partial"] is True
    s2 = run_recipe(part, overrides=["steps.train.resume=true", "steps.train.max_steps=1000",
                                     "steps.train.workers=1"])
    assert s2["status"] == "ok", s2

    assert step_losses(run) == pytest.approx(step_losses(ref), rel=1e-5, abs=1e-7)
    got, want = epochs(run), epochs(ref)
    assert [e["epoch"] for e in got] == [1, 2]
    for g, w in zip(got, want):
        assert g["train_loss"] == pytest.approx(w["train_loss"], rel=1e-5)
        assert g["val_loss"] == pytest.approx(w["val_loss"], rel=1e-5)

    from safetensors.torch import load_file

    a = load_file(ref / "checkpoints" / "last.safetensors")
    b = load_file(run / "checkpoints" / "last.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)


class _SigtermAfterFirstEpoch:
    """A test plugin: sends SIGTERM to this process when epoch 1 is logged."""

    @hookimpl
    def colorbatch_event(self, run, name, data):
        if name == "epoch" and data["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_checkpoints_and_exits_cleanly_then_resumes(tmp_path, write_recipe, run_recipe, colorbatch_pm):
    folder = colour_folder(tmp_path / "imgs", 4)
    recipe = write_recipe([("load", {"source": str(folder)}), ("train", dict(TINY, epochs=3))], name="sig")
    summary = run_recipe(recipe, pm=colorbatch_pm(_SigtermAfterFirstEpoch()))
    assert summary["status"] == "interrupted"
    assert summary["exit_code"] == 130
    run = Path(summary["run_dir"])
    assert [e["epoch"] for e in epochs(run)] == [1]
    from colorbatch.training.state import load_state

    st = load_state(run / "checkpoints" / "last.state.pt")
    assert (st["epoch"], st["batch_in_epoch"]) == (1, 0)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored

    again = run_recipe(recipe, overrides=["steps.train.resume=true"], pm=colorbatch_pm())
    assert again["status"] == "ok"
    assert [e["epoch"] for e in epochs(run)] == [1, 2, 3]


def test_gray_sources_are_skipped_and_counted(tmp_path, write_recipe, run_recipe, tiny_image):
    folder = colour_folder(tmp_path / "mixed", 2)
    tiny_image(folder / "gray.png", size=(64, 64), mode="L")
    tiny_image(folder / "gray_rgb.png", size=(64, 64), mode="RGB", pattern="faded")  # RGB file, no chroma
    recipe = write_recipe([("load", {"source": str(folder)}),
                           ("train", dict(TINY, epochs=1, val_fraction=0.0))], name="gray")
    summary = run_recipe(recipe)
    assert summary["status"] == "ok"
    assert summary["state"]["train_skipped_gray"] == "2"
    assert "skipped 2 gray" in summary["console"]


def test_publish_puts_the_model_where_colorize_finds_it(tmp_path, write_recipe, run_recipe):
    folder = colour_folder(tmp_path / "imgs", 3)
    recipe = write_recipe([("load", {"source": str(folder)}),
                           ("train", dict(TINY, epochs=1, publish=True))], name="pub")
    summary = run_recipe(recipe)
    assert summary["status"] == "ok"
    from colorbatch.models.checkpoint import discover_model

    found = discover_model(None)
    assert found.parent == tmp_path / "cache" / "models"
    assert found.read_bytes() == Path(summary["state"]["checkpoint"]).read_bytes()


def test_resume_without_checkpoint_is_one_clear_error(tmp_path, write_recipe, run_recipe):
    folder = colour_folder(tmp_path / "imgs", 2)
    recipe = write_recipe([("load", {"source": str(folder)}),
                           ("train", dict(TINY, epochs=1, resume=True))], name="noresume")
    summary = run_recipe(recipe)
    assert summary["status"] == "failed"
    assert "nothing to resume" in summary["error"]


# --------------------------------------------------------------------------- #
# units: losses, schedule, sampler, split
# --------------------------------------------------------------------------- #


def test_rebalanced_weights_favour_rare_colours_and_average_one():
    from colorbatch.training.losses import NBINS, RebalancedMSE, ab_bins, ab_histogram, rebalance_weights

    ab = torch.zeros(1, 2, 10, 10)
    ab[..., :2] = torch.tensor([60.0, -40.0]).view(1, 2, 1, 1)  # 20% saturated, 80% neutral
    counts = ab_histogram(ab)
    assert counts.sum() == 100
    w = rebalance_weights(counts.numpy(), lam=0.5)
    neutral = ab_bins(torch.zeros(1, 2, 1, 1)).item()
    rare = ab_bins(ab[:, :, :1, :1]).item()
    assert w[rare] > w[neutral]
    # uniform counts -> all weights 1; weighted loss == MSE
    flat = rebalance_weights(np.ones(NBINS * NBINS), lam=0.5)
    assert torch.allclose(flat, torch.ones_like(flat), atol=0.05)
    pred, target = torch.rand(2, 2, 8, 8) - 0.5, torch.rand(2, 2, 8, 8) - 0.5
    loss = RebalancedMSE(torch.ones(NBINS * NBINS))(pred, target)
    assert loss.item() == pytest.approx(torch.nn.functional.mse_loss(pred, target).item(), rel=1e-6)
    # weights applied per pixel by the bin of the target
    target = torch.zeros(1, 2, 1, 2)
    target[..., 1] = torch.tensor([60.0, -40.0]).view(1, 2, 1) / 128
    pred = target + 0.1
    expected = 0.01 * (w[neutral] + w[rare]) / 2
    assert RebalancedMSE(w)(pred, target).item() == pytest.approx(expected.item(), rel=1e-5)


def test_make_loss_names():
    from colorbatch.training.losses import LOSSES, make_loss

    pred, target = torch.full((1, 2, 2, 2), 0.5), torch.zeros(1, 2, 2, 2)
    values = {name: float(make_loss(name)(pred, target)) for name in LOSSES if name != "classify"}
    assert values["mse"] == pytest.approx(0.25)
    assert values["l1"] == pytest.approx(0.5)
    assert values["huber"] == pytest.approx(0.05 * (0.5 - 0.025))
    with pytest.raises(ValueError):
        make_loss("nope")


def test_schedules():
    from colorbatch.training.loop import LRSchedule

    cos = LRSchedule("cosine", 100)
    assert cos(0) == pytest.approx(1.0) and cos(100) == pytest.approx(0.01) and cos(50) < 1
    assert LRSchedule("constant", 100)(99) == 1.0
    one = LRSchedule("onecycle", 100)
    assert one(0) < one(30) and one(30) == pytest.approx(1.0) and one(100) < 0.01


def test_sampler_is_deterministic_resumable_and_sharded():
    from colorbatch.training.data import EpochSampler

    a = list(EpochSampler(10, seed=3, epoch=1))
    assert a == list(EpochSampler(10, seed=3, epoch=1))
    assert a != list(EpochSampler(10, seed=3, epoch=2))
    assert sorted(i for i, _ in a) == list(range(10))
    assert list(EpochSampler(10, seed=3, epoch=1, start=4)) == a[4:]
    shards = [list(EpochSampler(10, seed=3, epoch=1, rank=r, world_size=3)) for r in range(3)]
    assert len({len(s) for s in shards}) == 1  # equal length on every rank
    positions = [seed for s in shards for _, seed in s]
    assert len(set(positions)) == 12  # padded to 12, no position twice
    assert {i for s in shards for i, _ in s} == set(range(10))
    rep = list(EpochSampler(4, seed=0, repeat=3))
    assert len(rep) == 12 and sorted(i for i, _ in rep) == sorted(list(range(4)) * 3)


def test_validation_split_is_fixed_by_seed():
    from colorbatch.training.data import split_validation

    tr, va = split_validation(20, 0.1, seed=5)
    assert len(va) == 2 and not set(tr) & set(va) and len(tr) + len(va) == 20
    assert split_validation(20, 0.1, seed=5) == (tr, va)
    assert split_validation(20, 0.1, seed=6) != (tr, va)
    assert split_validation(1, 0.5, seed=0) == ([0], [])


def test_dataset_crops_are_seeded_and_flip(tmp_path):
    from colorbatch.training.data import ColorDataset

    path = smooth_colour_image(tmp_path / "a.png", 0, size=120)
    ds = ColorDataset([path], 32, train=True)
    x1, x2 = ds[(0, 11)], ds[(0, 11)]
    assert x1["ok"] and x1["rgb"].shape == (3, 32, 32)
    assert torch.equal(x1["rgb"], x2["rgb"])
    assert not torch.equal(x1["rgb"], ds[(0, 12)]["rgb"])
    val = ColorDataset([path], 32, train=False)[0]["rgb"]
    assert val.shape == (3, 32, 32)
    bad = ColorDataset([tmp_path / "missing.png"], 32)[0]
    assert bad["ok"] is False and bad["why"] == "error"


def test_csv_log_format(tmp_path, write_recipe, run_recipe):
    import csv

    folder = colour_folder(tmp_path / "imgs", 3)
    recipe = write_recipe([("load", {"source": str(folder)}),
                           ("train", dict(TINY, epochs=1, log_format="csv", log="{run_dir}/train_log.csv"))],
                          name="csvlog")
    summary = run_recipe(recipe)
    assert summary["status"] == "ok"
    rows = list(csv.DictReader((Path(summary["run_dir"]) / "train_log.csv").open()))
    assert [r["kind"] for r in rows] == ["step", "epoch"]
    assert float(rows[-1]["train_loss"]) > 0 and float(rows[-1]["val_loss"]) > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_channels_last_training(tmp_path, write_recipe, run_recipe):
    folder = colour_folder(tmp_path / "imgs", 4)
    recipe = write_recipe([("load", {"source": str(folder)}),
                           ("train", dict(TINY, epochs=2, device="cuda", workers=1))], name="cuda")
    summary = run_recipe(recipe)
    assert summary["status"] == "ok", summary
    assert summary["device"].startswith("cuda")
    losses = [e["train_loss"] for e in epochs(Path(summary["run_dir"]))]
    assert all(np.isfinite(losses))
