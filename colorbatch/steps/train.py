"""The `train` step (placeholder being written)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from colorbatch.steps import ItemStep, StepDef


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Step(ItemStep):
    def process(self, item):
        return item


STEP = StepDef(name="train", options=lambda: Options, factory=_Step, help="(not built yet)")
