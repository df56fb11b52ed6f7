"""The a*b* bins of the ``classify`` head: a 22 x 22 grid of 10-unit cells.

Bin ``i * 22 + j`` has centre ``(a, b) = (-105 + 10 i, -105 + 10 j)`` (same
layout as the rebalancing histogram in :mod:`colorbatch.training.losses`).
Targets are *soft*: a true a*b* value is shared between the four surrounding
centres with bilinear weights, so the expected value of the target
distribution is the true a*b* exactly (clipped to +-105). The prediction is
the mean of the predicted distribution sharpened by a temperature (Zhang,
Isola and Efros 2016, "annealed mean"): ``T = 1`` is the plain mean,
``T -> 0`` the mode. torch is imported lazily by the callers.
"""
from __future__ import annotations

GRID = 22
NBINS = GRID * GRID
STEP = 10.0
LO = -105.0  # first centre


def centres(device=None, dtype=None):
    """(2, NBINS) bin centres in a*b*/128 units."""
    import torch

    c = torch.arange(GRID, dtype=torch.float32) * STEP + LO
    a = c[:, None].expand(GRID, GRID).reshape(-1)
    b = c[None, :].expand(GRID, GRID).reshape(-1)
    out = torch.stack((a, b)) / 128.0
    return out.to(device=device, dtype=dtype or torch.float32)


def expected_ab(logits, temperature: float = 1.0):
    """(B, NBINS, h, w) logits -> (B, 2, h, w) a*b*/128: the annealed mean."""
    import torch

    t = float(temperature) if temperature and temperature > 0 else 1.0
    p = torch.softmax(logits.float() / t, dim=1)
    return torch.einsum("bqhw,cq->bchw", p, centres(logits.device))


def soft_targets(ab128):
    """(B, 2, h, w) true a*b*/128 -> (indices (B, 4, h, w) long, weights (B, 4, h, w)).

    The four grid centres around each value and their bilinear weights (sum 1).
    """
    import torch

    u = ((ab128.float() * 128.0 - LO) / STEP).clamp_(0.0, GRID - 1.0)
    lo = u.floor().clamp_(max=GRID - 2)
    f = u - lo
    lo = lo.long()
    ia, ib = lo[:, 0], lo[:, 1]
    fa, fb = f[:, 0], f[:, 1]
    idx = torch.stack((ia * GRID + ib, ia * GRID + ib + 1, (ia + 1) * GRID + ib, (ia + 1) * GRID + ib + 1), 1)
    w = torch.stack(((1 - fa) * (1 - fb), (1 - fa) * fb, fa * (1 - fb), fa * fb), 1)
    return idx, w


def soft_cross_entropy(logits, ab128, pixel_weights=None):
    """Cross-entropy of bin logits (B, NBINS, h, w) against soft targets of the true a*b*/128.

    ``pixel_weights`` (B, h, w), e.g. class rebalancing, weight each pixel.
    """
    import torch

    logp = torch.log_softmax(logits.float(), dim=1)
    idx, w = soft_targets(ab128)
    ce = -(torch.gather(logp, 1, idx) * w).sum(1)
    if pixel_weights is not None:
        ce = ce * pixel_weights
    return ce.mean()
