"""Flicker and speed of the video plugin on a generated test clip.

Prints:
  * flicker: mean absolute a*b* change between consecutive frames over the
    pixels whose L* is static (|dL*| < 0.5), for raw per-frame colorization,
    plain EMA smoothing, and the default (motion-gated EMA with scene cuts),
    measured on the a*b* arrays and on the decoded output videos;
  * ghosting: mean |a*b*| error against the raw prediction on moving pixels
    (what smoothing costs where things move);
  * frames/s of decoding, smoothing, and the whole load -> colorize -> save run.

By default a synthetic per-frame "colorizer" stands in for the model (a*b* from
L* plus a random per-frame shift and per-pixel noise: the flicker seen with
per-frame models); ``--model ckpt.safetensors`` uses a real checkpoint.

    python plugins/video/benchmarks/flicker.py [--model M] [--size 320x240] [--seconds 4]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def make_test_clip(path: Path, w: int, h: int, fps: int, seconds: float) -> Path:
    """A static textured scene with a bright square moving across, a cut half-way,
    light film grain, and a sine-tone sound track."""
    import subprocess

    from conftest import ffmpeg

    n = int(round(fps * seconds))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    scene_a = 50 + 120 * xx / w + 30 * np.sin(yy / 9.0)
    scene_b = 200 - 100 * yy / h + 25 * np.cos(xx / 13.0)
    frames = []
    for i in range(n):
        base = (scene_a if i < n // 2 else scene_b).copy()
        cx = int((w - w // 6) * (i % (n // 2)) / max(1, n // 2 - 1))
        base[h // 3: h // 3 + h // 6, cx: cx + w // 6] = 235
        base += rng.normal(0, 0.6, base.shape)  # light grain
        g = np.clip(base, 0, 255).astype(np.uint8)
        frames.append(np.repeat(g[..., None], 3, 2))
    raw = b"".join(f.tobytes() for f in frames)
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                    "-s", f"{w}x{h}", "-framerate", str(fps), "-i", "-", "-f", "lavfi",
                    "-i", f"sine=frequency=440:duration={seconds}", "-c:v", "libx264", "-crf", "12",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)], input=raw, check=True)
    return path


def synthetic_ab(L: np.ndarray, index: int) -> np.ndarray:
    rng = np.random.default_rng(index)
    base = np.stack([(L - 50) * 0.3, (50 - L) * 0.2 + 10], axis=-1)
    shift = rng.normal(0, 4.0, size=2)
    noise = rng.normal(0, 2.0, size=L.shape + (2,))
    return (base + shift + noise).astype(np.float32)


def ab_of_video(path: Path):
    from skimage.color import rgb2lab

    from conftest import decode_all

    labs = [rgb2lab(f / 255.0).astype(np.float32) for f in decode_all(path)]
    return [x[..., 0] for x in labs], [x[..., 1:] for x in labs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="a checkpoint; default: a synthetic flickering colorizer")
    ap.add_argument("--size", default="320x240", help="clip size WxH")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--fps", type=int, default=25)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))

    from conftest import run_recipe

    from colorbatch_video.smooth import TemporalSmoother, flicker
    from colorbatch_video.source import enumerate_source

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = make_test_clip(tmp / "clip.mp4", w, h, args.fps, args.seconds)

        t0 = time.perf_counter()
        items = enumerate_source(str(clip))
        Ls = []
        for it in items:
            Ls.append(it.L)
            it.drop_pixels()
        t_decode = time.perf_counter() - t0
        n = len(Ls)

        if args.model:
            from colorbatch.colorizer import Colorizer

            col = Colorizer(args.model, "cpu", 256, 8)
            t0 = time.perf_counter()
            raw = col.predict_ab([L.copy() for L in Ls])  # predict_ab may scale its inputs in place
            t_model = time.perf_counter() - t0
        else:
            raw = [synthetic_ab(L, i) for i, L in enumerate(Ls)]
            t_model = None

        def smoothed(**kw):
            s = TemporalSmoother(**kw)
            t0 = time.perf_counter()
            out = [s(L, ab) for L, ab in zip(Ls, raw)]
            return out, time.perf_counter() - t0, s.cuts

        plain, _, _ = smoothed(strength=0.7, motion_sigma=0.0)
        default, t_smooth, cuts = smoothed()

        def ghost(abs_):
            errs = []
            for i in range(1, n):
                moving = np.abs(Ls[i] - Ls[i - 1]) > 10
                if moving.any():
                    errs.append(float(np.abs(abs_[i] - raw[i]).mean(axis=-1)[moving].mean()))
            return float(np.mean(errs)) if errs else 0.0

        print(f"clip: {w}x{h}, {n} frames at {args.fps} fps, one scene cut; colorizer: "
              f"{args.model or 'synthetic per-frame (random shift sd 4 + pixel noise sd 2 in a*b*)'}")
        print(f"scene cuts detected: {cuts}")
        print("flicker (mean |d a*b*| between frames where L* is static), on a*b* arrays:")
        for name, abs_ in (("no smoothing", raw), ("plain EMA 0.7", plain), ("default (gated EMA 0.7)", default)):
            print(f"  {name:26s} flicker {flicker(Ls, abs_):6.3f}   ghosting on moving pixels {ghost(abs_):6.3f}")

        # whole pipeline through the runner, with and without smoothing, measured on the videos
        from conftest import FakePlugin  # noqa: F401  (registers fake_colorize)

        results = {}
        for label, smooth in (("on", True), ("off", False)):
            out = tmp / f"out_{label}.mp4"
            colorize = ({"uses": "colorize", "with": {"model": args.model, "size": 256, "workers": 0, "device": "cpu"}}
                        if args.model else {"uses": "fake_colorize", "with": {"noise": 4.0}})
            t0 = time.perf_counter()
            summary, _ = run_recipe([
                {"uses": "load", "with": {"source": str(clip)}},
                colorize,
                {"uses": "video_options", "with": {"smooth": smooth}},
                {"uses": "save", "with": {"out": str(out)}},
            ], tmp)
            results[label] = (time.perf_counter() - t0, summary["ok"], out)
        print("flicker measured on the decoded output videos (includes the codec):")
        for label in ("off", "on"):
            Lv, abv = ab_of_video(results[label][2])
            print(f"  smoothing {label:3s}  flicker {flicker(Lv, abv):6.3f}")
        print("speed (2-core CPU):")
        print(f"  decode (ffmpeg -> L*)          {n / t_decode:8.1f} frames/s")
        if t_model is not None:
            print(f"  model (predict_ab)             {n / t_model:8.1f} frames/s")
        print(f"  smoothing                      {n / t_smooth:8.1f} frames/s")
        for label in ("on", "off"):
            secs, ok, _ = results[label]
            print(f"  load->colorize->save, smooth {label:3s} {ok / secs:6.1f} frames/s ({ok} frames, {secs:.1f} s)")


if __name__ == "__main__":
    main()
