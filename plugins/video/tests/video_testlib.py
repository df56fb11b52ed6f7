"""Helpers for the video plugin's tests: tiny generated clips and a fake colorize step.

(A uniquely named module, not conftest.py, so that the tests of several plugins can run
in one pytest session.)"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, Field

from colorbatch import hookimpl
from colorbatch.steps import ItemStep, StepDef


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def clip_frames(w=96, h=64, n=50, color=False):
    """A coloured (or white) square moving over a gray gradient."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for i in range(n):
        g = 40 + 150 * xx / w + 20 * yy / h
        img = np.repeat(g[..., None], 3, 2)
        cx = int((w - 16) * i / max(1, n - 1))
        img[h // 4: h // 4 + 16, cx: cx + 16] = [200, 40, 40] if color else 230
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def make_clip(path: Path, w=96, h=64, fps=25, seconds=2.0, audio=True, color=False,
              rotate: int | None = None, vcodec="libx264") -> Path:
    """Encode a clip with imageio-ffmpeg's binary, with a sine-tone audio track."""
    n = int(round(fps * seconds))
    raw = b"".join(f.tobytes() for f in clip_frames(w, h, n, color))
    cmd = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-y"]
    if rotate is not None:
        cmd += ["-display_rotation", str(rotate)]
    cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", str(fps), "-i", "-"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    cmd += ["-c:v", vcodec, "-pix_fmt", "yuv444p" if (w % 2 or h % 2) else "yuv420p"]
    if vcodec == "libx264":
        cmd += ["-crf", "12", "-preset", "veryfast"]
    if audio:
        cmd += ["-c:a", "aac" if path.suffix != ".mkv" else "libvorbis"]
    cmd.append(str(path))
    if rotate is not None:  # -display_rotation applies to an input: re-mux with it
        tmp = path.with_name("unrot_" + path.name)
        cmd[-1] = str(tmp)
        rot_at = cmd.index("-display_rotation")
        del cmd[rot_at:rot_at + 2]
        subprocess.run(cmd, input=raw, check=True)
        subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-display_rotation", str(rotate),
                        "-i", str(tmp), "-c", "copy", str(path)], check=True)
        tmp.unlink()
        return path
    subprocess.run(cmd, input=raw, check=True)
    return path


def audio_md5(path: Path) -> str:
    out = subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:a",
                          "-c", "copy", "-f", "md5", "-"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def decode_all(path: Path) -> list[np.ndarray]:
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24", output_params=["-fps_mode", "passthrough"])
    meta = next(gen)
    w, h = meta["size"]
    return [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in gen]


class FakeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    noise: float = Field(6.0, description="per-frame a*b* noise (flicker)")
    interrupt_at: int = Field(-1, description="raise KeyboardInterrupt at this frame index")


class _FakeColorize(ItemStep):
    """Stands in for the model: a*b* from L* plus per-frame noise (flicker)."""

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        ctx.state.model_id = "fake-model"

    def process(self, item):
        from colorbatch_video import lab

        idx = int(item.meta.get("frame_index", 0))
        if idx == self.options.interrupt_at:
            raise KeyboardInterrupt
        if item.L is None:
            from colorbatch.images import decode_item

            decode_item(item)
        L = item.L
        rng = np.random.default_rng(idx)
        base = np.stack([(L - 50) * 0.3, (50 - L) * 0.2 + 10], axis=-1)
        jitter = rng.normal(0, self.options.noise, size=2)  # the whole frame shifts: flicker
        item.ab = (base + jitter).astype(np.float32)
        item.output = lab.compose(L, item.ab)
        return item


class FakePlugin:
    @hookimpl
    def colorbatch_register_steps(self):
        return [StepDef(name="fake_colorize", options=lambda: FakeOptions, factory=_FakeColorize, help="test")]


def run_recipe(steps: list[dict], base: Path, **kw) -> tuple[dict, object]:
    from rich.console import Console

    from colorbatch import registry
    from colorbatch.plugins import make_plugin_manager
    from colorbatch.recipe import build_plan
    from colorbatch.runner import RunContext, execute

    import colorbatch_video

    pm = make_plugin_manager(no_plugins=True, extra=[colorbatch_video, FakePlugin()])
    raw = {"schema_version": 1, "name": "t", "steps": steps}
    plan = build_plan(raw, registry.steps(pm), label="test", base_dir=base)
    plan.run_dir = None
    ctx = RunContext(plan, pm, console=Console(stderr=True, force_terminal=False), show_progress=False,
                     write_run_files=False)
    summary = execute(ctx)
    summary.pop("_exception", None)
    return summary, ctx
