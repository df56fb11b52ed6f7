"""The ``grayscale`` step: decode each item and render its L* as 8-bit gray.

``item.L`` holds the L* channel at full resolution; ``item.output`` becomes the
sRGB gray whose L* equals it (a* = b* = 0), so gray inputs pass through with
their values unchanged. ``item.rgb`` keeps a colour input as ground truth for
``evaluate``.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from colorbatch.steps import ItemStep, StepDef


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GrayscaleStep(ItemStep):
    def process(self, item):
        from colorbatch.images import L_to_gray, decode_item

        decode_item(item)
        item.output = L_to_gray(item.L)
        return item


STEP = StepDef(
    name="grayscale",
    options=lambda: Options,
    factory=GrayscaleStep,
    help="Decode images to L* and render them as gray (gray inputs pass through unchanged).",
)
