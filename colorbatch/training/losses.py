"""Training losses on a*b* / 128 (the model's output scale, [-1, 1]).

``mse``         mean squared error: the reference design's loss.
``l1``          mean absolute error.
``huber``       Huber (smooth L1) with ``delta`` = 0.05 on the /128 scale (6.4 a*b* units).
``classify``    cross-entropy over the 22 x 22 a*b* bins of the classify head
                (soft bilinear targets, :mod:`colorbatch.models.bins`); the model
                then outputs the (annealed) mean of its predicted distribution,
                which stays near gray where it is unsure. With ``weights`` the
                pixels are class-rebalanced as below.
``rebalanced``  class-rebalanced MSE: each pixel's squared error is weighted by
                the rarity of its true a*b* bin in the training set, against the
                desaturation plain MSE is known for (after Zhang, Isola and Efros,
                "Colorful Image Colorization", 2016): with the empirical bin
                distribution p smoothed by a Gaussian (sigma 5 a*b* units) and
                mixed with a uniform one over the Q bins seen,
                ``w = 1 / ((1 - lam) * p + lam / Q)``, normalised so the expected
                weight under p is 1 (so the loss stays on MSE's scale).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("mse", "l1", "huber", "rebalanced", "classify")
AB_MIN, AB_MAX, BIN = -110.0, 110.0, 10.0
NBINS = int((AB_MAX - AB_MIN) / BIN)  # 22 x 22 bins of 10 a*b* units
HUBER_DELTA = 0.05


def ab_bins(ab: torch.Tensor) -> torch.Tensor:
    """a*b* (..., 2, H, W) in a*b* units -> flat bin index (..., H, W)."""
    idx = ((ab - AB_MIN) / BIN).floor().clamp_(0, NBINS - 1).long()
    return idx[..., 0, :, :] * NBINS + idx[..., 1, :, :]


def ab_histogram(ab: torch.Tensor) -> torch.Tensor:
    """Counts (NBINS*NBINS,) of the a*b* values in a (B, 2, H, W) batch (a*b* units)."""
    return torch.bincount(ab_bins(ab).reshape(-1), minlength=NBINS * NBINS).double()


def _gaussian_smooth(p: np.ndarray, sigma_bins: float) -> np.ndarray:
    radius = max(1, int(math.ceil(3 * sigma_bins)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma_bins) ** 2)
    k /= k.sum()
    # separable blur; edge padding so a flat histogram stays flat at the borders
    pad = np.pad(p, radius, mode="edge")
    out = np.apply_along_axis(lambda r: np.convolve(r, k, mode="valid"), 0, pad)
    return np.apply_along_axis(lambda r: np.convolve(r, k, mode="valid"), 1, out)


def rebalance_weights(counts, *, lam: float = 0.5, sigma: float = 5.0) -> torch.Tensor:
    """Per-bin weights (NBINS*NBINS,) from a*b* bin counts; E_p[w] = 1."""
    c = np.asarray(counts, np.float64).reshape(NBINS, NBINS)
    if c.sum() <= 0:
        return torch.ones(NBINS * NBINS, dtype=torch.float32)
    p = _gaussian_smooth(c / c.sum(), sigma / BIN)
    p /= p.sum()
    seen = p > 1e-6
    q = max(1, int(seen.sum()))
    w = 1.0 / ((1.0 - lam) * p + lam / q)
    w /= float((p * w).sum())
    return torch.from_numpy(w.reshape(-1)).float()


class RebalancedMSE(nn.Module):
    """MSE weighted per pixel by ``weights[bin(true a*b*)]``."""

    def __init__(self, weights: torch.Tensor | None = None):
        super().__init__()
        w = torch.ones(NBINS * NBINS) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        self.register_buffer("weights", w.reshape(-1).clone())

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        w = self.weights[ab_bins(target.detach().float() * 128.0)]  # (B, H, W)
        err = (pred.float() - target.float()) ** 2  # (B, 2, H, W)
        return (err * w.unsqueeze(1)).mean()


class BinCrossEntropy(nn.Module):
    """Soft cross-entropy of bin logits (B, Q, h, w) against a*b*/128 targets.

    The target is area-averaged to the logits' resolution first (a mean of a*b*
    is still the right least-squares target there).
    """

    def __init__(self, weights: torch.Tensor | None = None):
        super().__init__()
        w = torch.ones(NBINS * NBINS) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        self.register_buffer("weights", w.reshape(-1).clone())
        self.rebalance = weights is not None

    def forward(self, logits, target: torch.Tensor) -> torch.Tensor:
        from colorbatch.models.bins import soft_cross_entropy

        if isinstance(logits, tuple):  # sampled positions: (logits (B,Q,k,1), positions (B,k), (h, w))
            logits, pos, hw = logits
            t = F.adaptive_avg_pool2d(target.float(), hw).flatten(2)
            target = t.gather(2, pos[:, None, :].expand(-1, t.shape[1], -1))[..., None]
        if target.shape[-2:] != logits.shape[-2:]:
            target = F.adaptive_avg_pool2d(target.float(), logits.shape[-2:])
        pw = self.weights[ab_bins(target.detach().float() * 128.0)] if self.rebalance else None
        return soft_cross_entropy(logits, target, pw)


def make_loss(name: str, weights: torch.Tensor | None = None) -> nn.Module | callable:
    """The loss function ``loss(pred, target)`` for ``name`` (see module doc)."""
    if name == "classify":
        return BinCrossEntropy(weights)
    if name == "mse":
        return lambda pred, target: F.mse_loss(pred.float(), target.float())
    if name == "l1":
        return lambda pred, target: F.l1_loss(pred.float(), target.float())
    if name == "huber":
        return lambda pred, target: F.huber_loss(pred.float(), target.float(), delta=HUBER_DELTA)
    if name == "rebalanced":
        return RebalancedMSE(weights)
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
