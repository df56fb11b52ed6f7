"""Temporal smoothing of predicted a*b* across the frames of a video.

Per-frame colorization flickers: the same wall turns a little bluer, then a
little greener, from one frame to the next. :class:`TemporalSmoother` keeps an
exponential moving average of a*b* per pixel::

    ema_t = w * ema_{t-1} + (1 - w) * ab_t,   w = strength * exp(-(dL / motion_sigma)^2)

where ``dL`` is that pixel's L* change since the previous frame: where the
picture is still, colours are averaged over time; where something moves, the
new prediction takes over at once (no colour trails behind moving objects).
At a scene cut (the L* histograms of consecutive frames differ by more than
``scene_cut`` in total variation) the average restarts from the new frame.
L* itself is never touched: smoothing changes colour only.
"""
from __future__ import annotations

import numpy as np

HIST_BINS = 32


def l_histogram(L: np.ndarray, bins: int = HIST_BINS) -> np.ndarray:
    """Normalised histogram of L* (0..100), on a subsample for speed."""
    step = max(1, int(np.sqrt(L.size / 65536)))
    sample = L[::step, ::step]
    hist, _ = np.histogram(sample, bins=bins, range=(0.0, 100.0))
    total = hist.sum()
    return hist.astype(np.float32) / (total if total else 1)


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total variation distance between two normalised histograms (0..1)."""
    return float(0.5 * np.abs(a - b).sum())


class TemporalSmoother:
    """Smooths a*b* of consecutive frames of one video; call in frame order."""

    def __init__(self, strength: float = 0.7, scene_cut: float = 0.3, motion_sigma: float = 6.0):
        if not 0.0 <= strength < 1.0:
            raise ValueError("strength must be in [0, 1)")
        self.strength = float(strength)
        self.scene_cut = float(scene_cut)
        self.motion_sigma = float(motion_sigma)
        self.cuts = 0
        self.reset()

    def reset(self) -> None:
        self.ema: np.ndarray | None = None
        self.prev_L: np.ndarray | None = None
        self.prev_hist: np.ndarray | None = None

    def is_cut(self, L: np.ndarray, hist: np.ndarray) -> bool:
        if self.prev_hist is None or self.prev_L is None or self.prev_L.shape != L.shape:
            return True
        return histogram_distance(hist, self.prev_hist) > self.scene_cut

    def __call__(self, L: np.ndarray, ab: np.ndarray) -> np.ndarray:
        """Return the smoothed a*b* (HxWx2 float32) for this frame."""
        L = np.asarray(L, np.float32)
        ab = np.asarray(ab, np.float32)
        hist = l_histogram(L)
        if self.strength <= 0.0 or self.is_cut(L, hist):
            if self.prev_hist is not None:
                self.cuts += 1
            out = ab.copy()
        else:
            if self.motion_sigma > 0:
                d = (L - self.prev_L) * (1.0 / self.motion_sigma)
                w = (self.strength * np.exp(-(d * d)))[..., None]
            else:
                w = np.float32(self.strength)
            out = (ab + w * (self.ema - ab)).astype(np.float32)
        self.ema = out
        self.prev_L = L
        self.prev_hist = hist
        return out.copy()

    # resume support: the state at the end of a finished chunk
    def state(self) -> dict:
        if self.ema is None:
            return {}
        return {"ema": self.ema, "prev_L": self.prev_L, "prev_hist": self.prev_hist}

    def load_state(self, state: dict) -> None:
        if not state or "ema" not in state:
            self.reset()
            return
        self.ema = np.asarray(state["ema"], np.float32)
        self.prev_L = np.asarray(state["prev_L"], np.float32)
        self.prev_hist = np.asarray(state["prev_hist"], np.float32)


def flicker(Ls, abs_, static: float = 0.5) -> float:
    """Mean absolute a*b* change between consecutive frames, over the pixels
    whose L* changed by less than ``static`` (where colour should not move)."""
    total = 0.0
    count = 0
    for i in range(1, len(Ls)):
        still = np.abs(np.asarray(Ls[i], np.float32) - np.asarray(Ls[i - 1], np.float32)) < static
        n = int(still.sum())
        if n == 0:
            continue
        diff = np.abs(np.asarray(abs_[i], np.float32) - np.asarray(abs_[i - 1], np.float32)).mean(axis=-1)
        total += float(diff[still].sum())
        count += n
    return total / count if count else 0.0
