"""Video encoding and smoothing settings.

The core ``save`` step knows nothing about codecs, so the video output reads
its settings, later ones winning, from: the defaults below; environment
variables ``COLORBATCH_VIDEO_<FIELD>`` (e.g. ``COLORBATCH_VIDEO_CRF=20``,
``COLORBATCH_VIDEO_SMOOTH=false``); a ``video_options`` step placed before
``save`` in a recipe (it keeps its options in the run state: ``ctx.state.find(VideoSettings)``).
"""
from __future__ import annotations

import os
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from colorbatch.api import ColorbatchError

ENV_PREFIX = "COLORBATCH_VIDEO_"


class VideoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    codec: Optional[str] = Field(
        None, description="ffmpeg video encoder (libx264, libx265, libvpx-vp9, ...); default: libx264, libvpx-vp9 for .webm."
    )
    crf: int = Field(18, ge=0, le=63, description="Constant rate factor: lower is better quality and bigger files.")
    preset: str = Field("medium", description="Encoder speed preset (x264/x265: ultrafast ... veryslow).")
    pix_fmt: Optional[str] = Field(
        None, description="Pixel format; default yuv420p, or yuv444p when a side is odd (the size is kept exactly)."
    )
    chunk_frames: int = Field(
        250, ge=1, description="Frames per encoded chunk; an interrupted run resumes after the last finished chunk."
    )
    smooth: bool = Field(True, description="Temporal smoothing of a*b* (less flicker); false turns it off.")
    strength: float = Field(0.7, ge=0.0, lt=1.0, description="Smoothing strength: weight of the running average (0 = off).")
    scene_cut: float = Field(
        0.3, gt=0.0, le=1.0, description="L* histogram change (total variation, 0..1) that counts as a scene cut and restarts smoothing."
    )
    motion_sigma: float = Field(
        6.0, ge=0.0, description="L* change (per pixel) over which smoothing fades out, so moving things leave no colour trails; 0 = plain average."
    )
    audio: bool = Field(True, description="Copy the original's audio streams untouched (no re-encode).")

    def identity(self) -> dict:
        """The settings that change the output file (resume only reuses matching work)."""
        return self.model_dump(mode="json")


def _from_env() -> dict:
    out = {}
    for name in VideoSettings.model_fields:
        value = os.environ.get(ENV_PREFIX + name.upper())
        if value is not None and value.strip() != "":
            out[name] = value.strip()
    return out


def resolve(ctx=None) -> VideoSettings:
    """Defaults < environment < a ``video_options`` step in the recipe."""
    data = _from_env()
    try:
        settings = VideoSettings(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err.get("loc") else "?"
        raise ColorbatchError(
            f"{ENV_PREFIX}{field.upper()}={data.get(field)!r}: {err.get('msg', 'invalid value')}"
        ) from None
    given = ctx.state.find(VideoSettings) if ctx is not None else None
    step_opts = given.model_dump(exclude_unset=True) if given is not None else {}
    if step_opts:
        merged = {**settings.model_dump(), **step_opts}
        settings = VideoSettings(**merged)
    return settings
