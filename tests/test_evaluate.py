"""Evaluation metrics against values computed by hand, the evaluate step and `colorbatch evaluate`."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from colorbatch import hookimpl, metrics as M
from colorbatch.steps import ItemStep, StepDef


def test_colorfulness_by_hand():
    # half pure red, half pure blue
    img = np.zeros((2, 2, 3), np.uint8)
    img[0] = (255, 0, 0)
    img[1] = (0, 0, 255)
    # rg = R-G: 255, 0 -> mean 127.5, std 127.5; yb = (R+G)/2 - B: 127.5, -255 -> mean -63.75, std 191.25
    expected = math.sqrt(127.5**2 + 191.25**2) + 0.3 * math.sqrt(127.5**2 + 63.75**2)
    assert M.colorfulness(img) == pytest.approx(expected)
    assert M.colorfulness(np.full((3, 3, 3), 77, np.uint8)) == 0.0


def test_psnr_by_hand():
    a = np.full((4, 4, 3), 100, np.uint8)
    b = a + np.uint8(16)
    assert M.psnr(b, a) == pytest.approx(10 * math.log10(255**2 / 256))
    assert M.psnr(a, a) == M.PSNR_CAP


def test_ab_mse_matches_loss_definition():
    true = np.zeros((3, 5, 2), np.float32)
    pred = true.copy()
    pred[..., 0] = 12.8  # 0.1 on the /128 scale in one channel
    assert M.ab_mse(pred, true) == pytest.approx(0.1**2 / 2)


def test_image_metrics_uniform_colour_by_hand():
    from skimage.color import lab2rgb, rgb2lab

    rgb = np.zeros((16, 16, 3), np.float32) + np.array([0.8, 0.4, 0.2], np.float32)
    lab = rgb2lab(rgb)
    L, ab = lab[..., 0], lab[..., 1:]
    offset = np.array([10.0, -5.0], np.float32)
    m = M.image_metrics(rgb, ab + offset)
    assert m["ab_mse"] == pytest.approx((10**2 + 5**2) / 2 / 128**2, rel=1e-4)
    assert m["gray_ab_mse"] == pytest.approx(float(np.mean((ab / 128) ** 2)), rel=1e-4)
    # PSNR: every pixel is the same colour, so it is one colour difference, by hand
    true_u8 = np.round(rgb[0, 0] * 255)
    pred_u8 = np.round(np.clip(lab2rgb(np.array([[[L[0, 0], *(ab[0, 0] + offset)]]])), 0, 1)[0, 0] * 255)
    mse = np.mean((pred_u8 - true_u8) ** 2)
    assert m["psnr"] == pytest.approx(10 * math.log10(255**2 / mse), rel=1e-6)
    # a uniform image has zero spread: colourfulness is 0.3 * |mean|
    r, g, b = true_u8
    assert m["colorfulness_gt"] == pytest.approx(0.3 * math.hypot(r - g, (r + g) / 2 - b))
    assert m["gray_colorfulness"] < 1.0
    assert m["gray_colorfulness_gap"] == pytest.approx(m["gray_colorfulness"] - m["colorfulness_gt"])


def test_perfect_prediction_and_gray_baseline():
    rng = np.random.default_rng(0)
    rgb = rng.random((24, 24, 3)).astype(np.float32)
    ab = M.rgb_to_lab(rgb)[..., 1:]
    m = M.image_metrics(rgb, ab)
    assert m["ab_mse"] == pytest.approx(0.0, abs=1e-10)
    assert m["psnr"] > 50
    assert m["ssim"] == pytest.approx(1.0, abs=1e-3)
    assert abs(m["colorfulness_gap"]) < 0.5
    assert m["gray_psnr"] < m["psnr"] and m["gray_ssim"] < 1.0
    assert m["gray_colorfulness_gap"] < -50  # a gray image has (almost) no colour
    with pytest.raises(ValueError):
        M.image_metrics(rgb, ab[:10])


def test_aggregate_mean_median_spread():
    rows = [{"psnr": p, "gray_psnr": 20.0} for p in (19.0, 21.0, 30.0)]
    agg = M.aggregate(rows)
    assert agg["images"] == 3
    assert agg["psnr"]["mean"] == pytest.approx(70 / 3)
    assert agg["psnr"]["median"] == 21.0
    assert agg["psnr"]["std"] == pytest.approx(np.std([19, 21, 30]))
    assert agg["psnr_gain"]["median"] == pytest.approx(1.0)
    assert agg["better_than_gray"] == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- #
# the step, with a stand-in for colorize that predicts half of the true a*b*
# --------------------------------------------------------------------------- #


class _HalfChroma(ItemStep):
    def process(self, item):
        from colorbatch.images import decode_item

        decode_item(item)
        if item.rgb is not None:
            item.ab = M.rgb_to_lab(item.rgb)[..., 1:] * 0.5
        return item


class _HalfPlugin:
    @hookimpl
    def colorbatch_register_steps(self):
        from pydantic import BaseModel, ConfigDict

        class Opts(BaseModel):
            model_config = ConfigDict(extra="forbid")

        return [StepDef("half_chroma", lambda: Opts, _HalfChroma, help="test stand-in")]


def test_evaluate_step_writes_json_csv_events_and_table(tmp_path, tiny_image, write_recipe, run_recipe, colorbatch_pm):
    folder = tmp_path / "truth"
    for i in range(3):
        tiny_image(folder / f"c{i}.png", size=(40, 32), mode="RGB", pattern="noise" if i else "gradient", seed=i)
    tiny_image(folder / "gray.png", size=(40, 32), mode="L")
    recipe = write_recipe([("load", {"source": str(folder)}), ("half_chroma", {}), ("evaluate", {})], name="ev")
    summary = run_recipe(recipe, pm=colorbatch_pm(_HalfPlugin()))
    assert summary["failed"] == 1  # the gray image has no ground truth colour
    assert "no colour ground truth" in summary["failures"][0]["error"]
    run = Path(summary["run_dir"])
    report = json.loads((run / "metrics.json").read_text())
    assert [r["item"] for r in report["items"]] == ["c0.png", "c1.png", "c2.png"]
    for r in report["items"]:
        # half the chroma: a quarter of the gray baseline's error, by definition
        assert r["ab_mse"] == pytest.approx(r["gray_ab_mse"] / 4, rel=1e-3)
        assert r["psnr"] > r["gray_psnr"]
    agg = report["aggregate"]
    assert agg["psnr"]["mean"] == pytest.approx(np.mean([r["psnr"] for r in report["items"]]), rel=1e-5)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert len(rows) == 3 and "gray_psnr" in rows[0] and "colorfulness_gt" in rows[0]
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert sum(e["event"] == "metrics" for e in events) == 3
    assert "PSNR" in summary["console"] and "gray" in summary["console"]


def test_evaluate_command(tmp_path, tiny_image, monkeypatch, colorbatch_pm):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from typer.testing import CliRunner

    from colorbatch.cli import build_app
    from colorbatch.models import build_model
    from colorbatch.models.checkpoint import save_checkpoint

    app = build_app(colorbatch_pm())
    ckpt = save_checkpoint(tmp_path / "m.safetensors", build_model("efficientnet-lite0", "none"), {})
    for i in range(2):
        tiny_image(tmp_path / "truth" / f"c{i}.png", size=(48, 40), mode="RGB", seed=i)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["evaluate", "truth", "--model", str(ckpt), "--size", "64",
                                      "--workers", "0", "--out", "ev", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert len(report["items"]) == 2 and report["name"].startswith("efficientnet-lite0")
    assert (tmp_path / "ev" / "run.json").is_file()
