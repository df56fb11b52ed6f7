"""Recipe steps of the video plugin.

``video_options``   encoding and smoothing settings for the ``video-frame`` output.
``temporal_smooth`` smooths a*b* across frames in the stream (instead of at save).
``video_export``    writes frames of videos as numbered PNG files plus ``video.json``.
``video_assemble``  joins numbered frames into a video with the original's audio and timing.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from colorbatch.api import ColorbatchError, ItemError
from colorbatch.api import ItemStep, Step, StepDef

from colorbatch_video import lab
from colorbatch_video.settings import VideoSettings

FRAME_PATTERN = "frame_{:06d}.png"
INFO_FILE = "video.json"

# --------------------------------------------------------------------------- #
# video_options
# --------------------------------------------------------------------------- #


class _VideoOptionsStep(Step):
    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        ctx.state.put(options)  # a VideoSettings: the video output finds it by its type

    def run(self, items):
        yield from items


VIDEO_OPTIONS = StepDef(
    name="video_options",
    options=lambda: VideoSettings,
    factory=_VideoOptionsStep,
    help="Codec, quality, chunking and temporal smoothing for videos written by `save` (place before save).",
)

# --------------------------------------------------------------------------- #
# temporal_smooth
# --------------------------------------------------------------------------- #


class SmoothOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strength: float = Field(0.7, ge=0.0, lt=1.0, description="Weight of the running a*b* average (0 = off).")
    scene_cut: float = Field(0.3, gt=0.0, le=1.0, description="L* histogram change (0..1) that restarts the average.")
    motion_sigma: float = Field(6.0, ge=0.0, description="Per-pixel L* change over which smoothing fades out; 0 = plain average.")


class _SmoothStep(ItemStep):
    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.video = None
        self.smoother = None

    def process(self, item):
        if item.kind != "video-frame" or item.ab is None or item.L is None or item.meta.get("smoothed"):
            return item
        from colorbatch_video.smooth import TemporalSmoother

        video = item.meta.get("video")
        if video != self.video or self.smoother is None:
            o = self.options
            self.smoother = TemporalSmoother(o.strength, o.scene_cut, o.motion_sigma)
            self.video = video
        item.ab = self.smoother(item.L, item.ab)
        item.output = lab.compose(item.L, item.ab)
        item.meta["smoothed"] = True
        return item


TEMPORAL_SMOOTH = StepDef(
    name="temporal_smooth",
    options=lambda: SmoothOptions,
    factory=_SmoothStep,
    help="Smooth predicted a*b* over video frames (EMA, reset at scene cuts); save then does not smooth again.",
)

# --------------------------------------------------------------------------- #
# video_export
# --------------------------------------------------------------------------- #


class ExportOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    out: str = Field(..., description="Folder; each video's frames go to out/<video path without suffix>/frame_000000.png.")
    frames: Literal["auto", "input", "output"] = Field(
        "auto", description="Which pixels: the colorized output when there is one (auto), the input, or the output."
    )
    pass_items: bool = Field(True, description="Pass the frames on to later steps (false: stop them here).")


def _write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    from colorbatch.api import atomic_write

    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG", compress_level=1))


class _ExportStep(ItemStep):
    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.out = Path(options.out)
        self._seen: set[str] = set()

    def process(self, item):
        if item.kind != "video-frame":
            return item if self.options.pass_items else None
        meta = item.meta
        rel = Path(meta.get("video_id") or Path(meta["video"]).name)
        folder = self.out / rel.with_suffix("")
        if meta["video"] not in self._seen:
            folder.mkdir(parents=True, exist_ok=True)
            info = {k: meta.get(k) for k in ("video", "fps", "fps_rational", "n_frames", "width", "height",
                                            "duration", "rotation", "vfr", "audio")}
            info["pattern"] = "frame_%06d.png"
            from colorbatch.api import atomic_write_text

            atomic_write_text(folder / INFO_FILE, json.dumps(info, indent=1))
            self._seen.add(meta["video"])
        use_output = self.options.frames == "output" or (self.options.frames == "auto" and item.output is not None)
        if use_output:
            if item.output is None and item.ab is None:
                raise ItemError(f"{item.label}: no colorized output to export (put video_export after colorize)")
            from colorbatch_video.output import frame_array

            array = frame_array(item, None)
        elif item.rgb is not None:
            array = lab.to_uint8(item.rgb)
        else:
            array = lab.compose(item.L, None)[..., 0]  # gray frame: 8-bit gray PNG
        path = folder / FRAME_PATTERN.format(int(meta["frame_index"]))
        _write_png(path, array)
        return item if self.options.pass_items else None


VIDEO_EXPORT = StepDef(
    name="video_export",
    options=lambda: ExportOptions,
    factory=_ExportStep,
    help="Write video frames as numbered PNG files (and video.json with the original's timing) for other steps.",
    path_options=("out",),
)

# --------------------------------------------------------------------------- #
# video_assemble
# --------------------------------------------------------------------------- #


class AssembleOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    frames: str = Field(..., description="Folder of numbered frames (frame_000000.png ... any image format).")
    out: str = Field(..., description="The video file to write (its extension picks the container).")
    audio_from: Optional[str] = Field(
        None, description="Video whose audio streams and frame rate to use; default: the `video` in frames/video.json."
    )
    fps: Optional[str] = Field(None, description="Frame rate (e.g. 25 or 30000/1001); default: the original's.")
    codec: Optional[str] = Field(None, description="ffmpeg video encoder; default libx264 (libvpx-vp9 for .webm).")
    crf: int = Field(18, ge=0, le=63, description="Constant rate factor (quality).")
    preset: str = Field("medium", description="Encoder speed preset.")
    overwrite: bool = Field(False, description="Replace `out` if it exists.")


_NUM = re.compile(r"(\d+)(?=\.[A-Za-z0-9]+$)")
_IMAGE_EXT = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"}


def numbered_frames(folder: Path) -> list[Path]:
    """Image files of ``folder`` with a number before the suffix, in numeric order."""
    found = []
    for p in folder.iterdir():
        if p.is_file() and p.suffix.lower() in _IMAGE_EXT and not p.name.startswith("."):
            m = _NUM.search(p.name)
            if m:
                found.append((int(m.group(1)), p.name, p))
    return [p for _, _, p in sorted(found)]


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as exc:  # noqa: BLE001
        raise ColorbatchError(f"{path}: cannot read frame ({exc})") from None


class _AssembleStep(Step):
    def run(self, items):
        yield from items
        self.assemble()

    def assemble(self) -> Path:
        from fractions import Fraction

        from colorbatch_video.encode import ChunkedEncoder
        from colorbatch_video.source import read_info

        o = self.options
        folder, target = Path(o.frames), Path(o.out)
        if not folder.is_dir():
            raise ColorbatchError(f"video_assemble: frames folder {folder} does not exist")
        if target.exists() and not o.overwrite:
            self.ctx.log(f"{target} exists; skipped (overwrite = true to replace it)")
            return target
        info = {}
        if (folder / INFO_FILE).is_file():
            info = json.loads((folder / INFO_FILE).read_text())
        audio_from = Path(o.audio_from) if o.audio_from else (Path(info["video"]) if info.get("video") else None)
        if audio_from is not None and not audio_from.is_file():
            raise ColorbatchError(f"video_assemble: audio_from {audio_from} does not exist")
        fps = o.fps or info.get("fps_rational")
        if fps is None and audio_from is not None:
            fr = read_info(audio_from).fps
            fps = f"{fr.numerator}/{fr.denominator}"
        if fps is None:
            raise ColorbatchError("video_assemble: no frame rate; set fps or audio_from")
        try:
            Fraction(str(fps))
        except (ValueError, ZeroDivisionError):
            raise ColorbatchError(f"video_assemble: fps {fps!r} is not a number like 25 or 30000/1001") from None
        paths = numbered_frames(folder)
        if not paths:
            raise ColorbatchError(f"video_assemble: no numbered frames in {folder} (e.g. frame_000000.png)")
        first = _read_rgb(paths[0])
        h, w = first.shape[:2]
        settings = VideoSettings(codec=o.codec, crf=o.crf, preset=o.preset, chunk_frames=10**9, smooth=False)
        target.parent.mkdir(parents=True, exist_ok=True)
        enc = ChunkedEncoder(target, width=w, height=h, fps=str(fps), settings=settings,
                             identity={"assemble": str(folder.resolve()), "n": len(paths)},
                             audio_from=audio_from)
        task = self.ctx.task("assembling", total=len(paths), unit="frames")
        try:
            for p in paths:
                frame = first if p == paths[0] else _read_rgb(p)
                if frame.shape[:2] != (h, w):
                    raise ColorbatchError(f"{p}: frame is {frame.shape[1]}x{frame.shape[0]}, the first is {w}x{h}")
                enc.write(frame)
                task.advance()
            path = enc.finalize()
        except BaseException:
            enc.abort()
            import shutil

            shutil.rmtree(enc.work, ignore_errors=True)
            raise
        finally:
            task.close()
        self.ctx.log(f"assembled {len(paths)} frames into {path}")
        self.ctx.event("video_written", {"video": str(audio_from) if audio_from else None,
                                         "output": str(path), "frames": len(paths)})
        return path


VIDEO_ASSEMBLE = StepDef(
    name="video_assemble",
    options=lambda: AssembleOptions,
    factory=_AssembleStep,
    help="At the end of the stream, join numbered frames into a video with the original's audio and frame rate.",
    path_options=("frames", "out", "audio_from"),
)

STEPS = [VIDEO_OPTIONS, TEMPORAL_SMOOTH, VIDEO_EXPORT, VIDEO_ASSEMBLE]
