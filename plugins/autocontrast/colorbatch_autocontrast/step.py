"""The ``autocontrast`` step: a percentile stretch of L* for faded scans.

Faded prints and scans use only part of the tonal range: blacks are gray, whites
are dull. The step measures the ``cutoff`` and ``100 - cutoff_high`` percentiles
of L* and maps them to ``black`` and ``white``, with the gain capped at
``max_gain`` (so that nearly flat images do not turn into noise), then blends
the result with the original by ``strength``. Only L* changes; a colour input's
``item.rgb`` stays as it was (it is the ground truth for ``evaluate``).

Put it after ``load`` and before ``colorize`` (or ``grayscale`` / ``save``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from colorbatch.api import ItemStep, StepDef

MAX_SAMPLES = 1_000_000  # percentiles are measured on at most this many pixels


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cutoff: float = Field(
        0.5, ge=0, lt=50, description="Percent of the darkest pixels clipped to black (and of the "
        "brightest to white unless cutoff_high is set)."
    )
    cutoff_high: Optional[float] = Field(
        None, ge=0, lt=50, description="Percent of the brightest pixels clipped to white (default: cutoff)."
    )
    black: float = Field(0.0, ge=0, le=100, description="L* the dark end is mapped to.")
    white: float = Field(100.0, ge=0, le=100, description="L* the bright end is mapped to.")
    strength: float = Field(1.0, ge=0, le=1, description="Blend: 0 leaves the image alone, 1 applies the full stretch.")
    max_gain: float = Field(5.0, ge=1, description="Largest contrast gain, so nearly flat images are not blown up.")
    min_range: float = Field(
        1.0, ge=0, description="Images whose measured L* range is below this are left alone (flat)."
    )

    @model_validator(mode="after")
    def _order(self):
        if self.white <= self.black:
            raise ValueError(f"white ({self.white}) must be above black ({self.black})")
        return self


def measure(L: np.ndarray, low_pct: float, high_pct: float) -> tuple[float, float]:
    """The ``low_pct`` and ``100 - high_pct`` percentiles of L* (on a subsample of big images)."""
    step = max(1, int(np.ceil(np.sqrt(L.size / MAX_SAMPLES))))
    sample = L[::step, ::step]
    lo, hi = np.percentile(sample, [low_pct, 100.0 - high_pct])
    return float(lo), float(hi)


def stretch_L(L: np.ndarray, options: Options) -> tuple[np.ndarray, dict]:
    """Return the stretched L* and what was done (``low``, ``high``, ``gain``; ``skipped``)."""
    high_pct = options.cutoff if options.cutoff_high is None else options.cutoff_high
    lo, hi = measure(L, options.cutoff, high_pct)
    info = {"low": round(lo, 3), "high": round(hi, 3)}
    if hi - lo < max(options.min_range, 1e-6):
        info["skipped"] = "flat"
        return L, info
    gain = min((options.white - options.black) / (hi - lo), options.max_gain)
    mid_in = (lo + hi) / 2.0
    mid_out = (options.black + options.white) / 2.0
    stretched = np.clip(mid_out + (L - mid_in) * gain, 0.0, 100.0)
    if options.strength < 1.0:
        stretched = L + options.strength * (stretched - L)
    info["gain"] = round(float(gain), 4)
    return stretched.astype(np.float32), info


class AutocontrastStep(ItemStep):
    def process(self, item):
        from colorbatch.api import decode_item

        decode_item(item)  # fills item.L (and item.rgb for colour inputs)
        item.L, info = stretch_L(item.L, self.options)
        item.meta["autocontrast"] = info
        if "skipped" in info:
            item.notes.append("autocontrast: image is flat; left as is")
        else:
            item.output = None  # an earlier rendering no longer matches L*: save re-renders it
        return item


STEP = StepDef(
    name="autocontrast",
    options=lambda: Options,
    factory=AutocontrastStep,
    help="Stretch the tonal range (L*) of faded scans before colorizing (percentile based).",
)
