"""The classify head: soft bin targets, the annealed mean, the loss, calibration."""
import numpy as np
import pytest
import torch

from colorbatch.models import bins


def _peaked_logits(ab128):
    idx, w = bins.soft_targets(ab128)
    logits = torch.full((ab128.shape[0], bins.NBINS) + tuple(ab128.shape[-2:]), -1e4)
    return logits.scatter_(1, idx, torch.log(w + 1e-12))


def test_soft_targets_keep_the_mean():
    ab = torch.rand(2, 2, 5, 7) * 1.6 - 0.8
    idx, w = bins.soft_targets(ab)
    assert torch.allclose(w.sum(1), torch.ones(2, 5, 7))
    assert int(idx.min()) >= 0 and int(idx.max()) < bins.NBINS
    assert torch.allclose(bins.expected_ab(_peaked_logits(ab)), ab, atol=1e-5)


def test_extreme_values_are_clipped_to_the_outer_centres():
    ab = torch.tensor([[[[1.0]], [[-1.0]]]])  # a* = 128, b* = -128
    out = bins.expected_ab(_peaked_logits(ab))
    assert torch.allclose(out * 128, torch.tensor([[[[105.0]], [[-105.0]]]]), atol=1e-3)


def test_temperature_sharpens_towards_the_mode():
    logits = torch.zeros(1, bins.NBINS, 1, 1)
    centres = bins.centres()
    vivid = int(torch.argmin((centres[0] - 60 / 128) ** 2 + (centres[1] - 40 / 128) ** 2))
    logits[0, vivid] = 3.0
    plain = bins.expected_ab(logits, 1.0).norm()
    sharp = bins.expected_ab(logits, 0.38).norm()
    assert sharp > plain * 1.5


def test_cross_entropy_prefers_the_true_colour():
    from colorbatch.training.losses import make_loss

    target = torch.rand(1, 2, 8, 8) * 1.2 - 0.6
    loss = make_loss("classify")
    right = float(loss(_peaked_logits(target) / 1e3, target))  # soft but pointed the right way
    uniform = float(loss(torch.zeros(1, bins.NBINS, 8, 8), target))
    wrong = float(loss(_peaked_logits(-target) / 1e3, target))
    assert right < uniform < wrong


def test_classify_model_outputs_ab_and_logits():
    from colorbatch.models import build_model

    model = build_model("efficientnet-lite0", encoder_weights="none", head="classify", out_stride=4).eval()
    x = torch.rand(1, 1, 64, 96)
    with torch.no_grad():
        ab = model(x)
        logits = model(x, logits=True)
    assert ab.shape == (1, 2, 64, 96) and float(ab.abs().max()) <= 105 / 128 + 1e-6
    assert logits.shape == (1, bins.NBINS, 16, 24)
    assert model.arch["head"] == "classify"


def test_unknown_head_is_one_clear_error():
    from colorbatch.errors import ColorbatchError
    from colorbatch.models import build_model

    with pytest.raises(ColorbatchError, match="unknown head"):
        build_model("efficientnet-lite0", encoder_weights="none", head="softmax")


def test_calibration_picks_the_setting_nearest_the_true_colourfulness():
    from colorbatch.training.calibrate import choose

    def rows(psnr, colour):
        return [{"psnr": psnr, "gray_psnr": 20.0, "colorfulness": colour, "colorfulness_gt": 30.0,
                 "a": 0.0, "b": 0.0, "a_gt": 0.0, "b_gt": 0.0}]

    grid = {(1.0, 1.0): rows(25.0, 10.0), (0.5, 1.0): rows(24.95, 28.0), (0.38, 1.5): rows(23.0, 30.0)}
    key, sums = choose(grid)
    assert key == (0.5, 1.0)  # within 0.25 dB of the best and nearest the truth; (0.38, 1.5) loses PSNR
    assert sums[key]["beat_gray"] == 1
