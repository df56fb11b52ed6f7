"""End-to-end and unit tests of the video plugin on tiny generated clips."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from video_testlib import audio_md5, decode_all, make_clip, run_recipe

from colorbatch_video import lab
from colorbatch_video.source import enumerate_source, read_info
from colorbatch_video.smooth import TemporalSmoother, flicker


def _colorize(src, out, tmp, *, noise=6.0, interrupt_at=-1, video=None):
    steps = [{"uses": "load", "with": {"source": str(src)}},
             {"uses": "fake_colorize", "with": {"noise": noise, "interrupt_at": interrupt_at}}]
    if video is not None:
        steps.append({"uses": "video_options", "with": video})
    steps.append({"uses": "save", "with": {"out": str(out)}})
    return run_recipe(steps, tmp)


def _L(frames):
    return [lab.rgb_to_L(f.astype(np.float32) / 255) for f in frames]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and "colorbatch-video" not in p.name)


def test_source_lists_frames_lazily(clip):
    items = enumerate_source(str(clip))
    assert len(items) == 50
    assert [it.meta["frame_index"] for it in items[:3]] == [0, 1, 2]
    assert items[-1].meta["last"] and not items[0].meta["last"]
    assert items[0].meta["fps"] == 25.0 and items[0].meta["audio"][0]["codec"] == "aac"
    assert items[10].meta["timestamp"] == pytest.approx(0.4)
    assert not items[5].decoded  # nothing decoded yet
    assert items[5].L.shape == (64, 96) and items[5].rgb is None  # gray clip: L only
    items[5].drop_pixels()
    assert items[5].L is None  # dropped pixels are not decoded again


def test_colour_frames_have_rgb(tmp_path):
    items = enumerate_source(str(make_clip(tmp_path / "c.mp4", seconds=0.4, color=True, audio=False)))
    rgb = items[3].rgb
    assert rgb.dtype == np.float32 and rgb.shape == (64, 96, 3) and 0 <= rgb.min() and rgb.max() <= 1
    assert np.abs(lab.rgb_to_L(rgb) - items[3].L).max() < 1e-2
    items[3].L = None  # what colorize does after reading L: rgb must stay readable
    assert items[3].rgb is not None
    items[3].rgb = None
    assert items[3].rgb is None and items[3].L is None


def test_colorize_keeps_frames_rate_duration_audio_and_L(clip, tmp_path):
    out = tmp_path / "film_color.mp4"
    summary, ctx = _colorize(clip, out, tmp_path)
    assert summary["failed"] == 0 and out.is_file()
    src, dst = read_info(clip), read_info(out)
    assert dst.packets == src.packets == 50
    assert dst.fps == src.fps
    assert (dst.width, dst.height) == (src.width, src.height)
    assert dst.duration == pytest.approx(src.duration, abs=0.05)
    assert dst.audio and audio_md5(out) == audio_md5(clip)  # copied untouched
    a, b = _L(decode_all(clip)), _L(decode_all(out))
    assert len(a) == len(b) == 50
    assert max(float(np.abs(x - y).mean()) for x, y in zip(a, b)) < 1.5  # L* kept (codec tolerance)
    colour = decode_all(out)[25].astype(int)
    assert np.abs(colour[..., 0] - colour[..., 2]).mean() > 3  # it is in colour now
    assert _leftovers(tmp_path) == []  # no temporary files or work folders left


def test_smoothing_lowers_flicker(clip, tmp_path):
    on, off = tmp_path / "on.mp4", tmp_path / "off.mp4"
    _colorize(clip, on, tmp_path)
    _colorize(clip, off, tmp_path, video={"smooth": False})

    def measure(path):
        frames = decode_all(path)
        from skimage.color import rgb2lab

        labs = [rgb2lab(f / 255.0) for f in frames]
        return flicker([x[..., 0] for x in labs], [x[..., 1:] for x in labs], static=1.0)

    f_on, f_off = measure(on), measure(off)
    assert f_on < 0.6 * f_off, (f_on, f_off)


def test_smoother_resets_at_scene_cut():
    s = TemporalSmoother(strength=0.9, scene_cut=0.3, motion_sigma=0)
    dark, bright = np.full((8, 8), 20, np.float32), np.full((8, 8), 80, np.float32)
    a1, a2 = np.full((8, 8, 2), 10, np.float32), np.full((8, 8, 2), -30, np.float32)
    s(dark, a1)
    assert np.allclose(s(dark, a2), 0.9 * 10 + 0.1 * -30)  # smoothed
    assert np.allclose(s(bright, a2), -30)  # cut: starts afresh
    assert s.cuts == 1
    # plain unit check of the flicker figure
    Ls = [dark] * 10
    noisy = [a1 + (5 if i % 2 else -5) for i in range(10)]
    s2 = TemporalSmoother(strength=0.8, motion_sigma=0)
    assert flicker(Ls, [s2(L, a) for L, a in zip(Ls, noisy)]) < 0.5 * flicker(Ls, noisy)


def test_resume_after_interruption(clip, tmp_path):
    out = tmp_path / "r.mp4"
    opts = {"chunk_frames": 10}
    summary, _ = _colorize(clip, out, tmp_path, interrupt_at=27, video=opts)
    assert summary["status"] == "interrupted"
    assert not out.exists()  # never a half-written output
    work = tmp_path / ".r.mp4.colorbatch-parts"
    assert sorted(p.name for p in work.iterdir() if p.name.startswith("seg_")) == ["seg_00000.mp4", "seg_00001.mp4"]
    summary, _ = _colorize(clip, out, tmp_path, video=opts)
    assert summary["skipped"] == 20 and summary["ok"] == 30  # resumed after the last finished chunk
    assert out.is_file() and not work.exists()
    ref = tmp_path / "ref.mp4"
    _colorize(clip, ref, tmp_path, video=opts)
    a, b = decode_all(out), decode_all(ref)
    assert len(a) == len(b) == 50
    assert max(float(np.abs(x.astype(int) - y).mean()) for x, y in zip(a, b)) < 1.0  # same as uninterrupted
    summary, _ = _colorize(clip, out, tmp_path, video=opts)  # a third run: all done
    assert summary["skipped"] == 50 and summary["ok"] == 0


def test_odd_size_and_rotation(tmp_path):
    odd = make_clip(tmp_path / "odd.mp4", w=85, h=47, seconds=0.6, audio=False)
    out = tmp_path / "out"
    summary, _ = _colorize(odd, out, tmp_path)
    info = read_info(out / "odd.mp4")
    assert (info.width, info.height) == (85, 47) and info.packets == 15
    rot = make_clip(tmp_path / "rot.mp4", seconds=0.6, rotate=90)
    assert read_info(rot).rotation == 90
    summary, _ = _colorize(rot, out, tmp_path)
    info = read_info(out / "rot.mp4")
    assert (info.width, info.height) == (64, 96) and info.rotation == 0  # upright pixels, no rotation flag
    assert summary["failed"] == 0


def test_bad_inputs_are_reported_and_leave_nothing(tmp_path, clip):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(clip, src / "good.mp4")
    (src / "empty.mp4").write_bytes(b"")
    (src / "text.mkv").write_text("not a video")
    make_clip(src / "sound.mp4", seconds=0.5, audio=True)
    import subprocess
    from video_testlib import ffmpeg

    subprocess.run([ffmpeg(), "-loglevel", "error", "-y", "-i", str(src / "sound.mp4"), "-vn", "-c", "copy",
                    str(src / "audio_only.mp4")], check=True)
    (src / "sound.mp4").unlink()
    data = clip.read_bytes()
    (src / "cut.mp4").write_bytes(data[: len(data) // 2])  # truncated mp4: index lost
    out = tmp_path / "out"
    summary, ctx = _colorize(src, out, tmp_path)
    reasons = {Path(f["item"]).name: f["error"] for f in ctx.failures}
    assert set(reasons) == {"empty.mp4", "text.mkv", "audio_only.mp4", "cut.mp4"}, reasons
    assert "no video stream" in reasons["audio_only.mp4"]
    assert "empty" in reasons["empty.mp4"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["good.mp4"]
    assert _leftovers(out) == []


def test_truncated_stream_gives_complete_video(tmp_path):
    mkv = make_clip(tmp_path / "t.mkv", seconds=2.0, audio=False)
    data = mkv.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    out = tmp_path / "out"
    summary, ctx = _colorize(cut, out, tmp_path)
    res = out / "cut.mkv"
    if summary["failed"]:  # the container lost its index: one clear line, nothing written
        assert not res.exists() and "cut.mkv" in ctx.failures[0]["item"]
    else:
        n = read_info(cut).n_frames
        assert len(decode_all(res)) == n


def test_export_and_assemble_frames(clip, tmp_path):
    frames = tmp_path / "frames"
    summary, _ = run_recipe([
        {"uses": "load", "with": {"source": str(clip)}},
        {"uses": "video_export", "with": {"out": str(frames), "pass_items": False}},
    ], tmp_path)
    folder = frames / "film"
    pngs = sorted(folder.glob("frame_*.png"))
    assert len(pngs) == 50 and (folder / "video.json").is_file()
    out = tmp_path / "assembled.mp4"
    summary, _ = run_recipe([{"uses": "video_assemble", "with": {"frames": str(folder), "out": str(out)}}], tmp_path)
    info = read_info(out)
    assert info.packets == 50 and info.fps == 25
    assert audio_md5(out) == audio_md5(clip)


def test_variable_frame_rate_is_resampled(tmp_path):
    import subprocess
    from video_testlib import clip_frames, ffmpeg

    raw = b"".join(f.tobytes() for f in clip_frames(n=40))
    vfr = tmp_path / "vfr.mkv"
    # first 20 frames at 10 fps, the rest at 40 fps
    subprocess.run([ffmpeg(), "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "96x64",
                    "-framerate", "40", "-i", "-", "-vf", "setpts='if(lt(N,20),N*4,60+N)/40/TB'",
                    "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "veryfast", str(vfr)], input=raw, check=True)
    info = read_info(vfr)
    assert info.vfr
    out = tmp_path / "out"
    summary, _ = _colorize(vfr, out, tmp_path)
    res = read_info(out / "vfr.mkv")
    assert res.duration == pytest.approx(info.duration, abs=0.1)
    assert len(decode_all(out / "vfr.mkv")) == info.n_frames


def test_mixed_folder_photos_and_video(tmp_path, clip):
    from PIL import Image

    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    shutil.copy(clip, src / "sub" / "film.mp4")
    Image.fromarray(np.full((32, 48), 120, np.uint8)).save(src / "photo.png")
    out = tmp_path / "out"
    summary, ctx = _colorize(src, out, tmp_path)
    assert summary["failed"] == 0
    assert (out / "photo.png").is_file() and (out / "sub" / "film.mp4").is_file()
    assert read_info(out / "sub" / "film.mp4").packets == 50


def test_numpy_lab_helpers_match_the_core():
    torch = pytest.importorskip("torch")
    from colorbatch import color

    from colorbatch_video.source import _rgb8_to_L, decode_frame

    rng = np.random.default_rng(1)
    L = rng.uniform(0, 100, (32, 40)).astype(np.float32)
    ab = rng.uniform(-100, 100, (32, 40, 2)).astype(np.float32)
    assert np.abs(lab.lab_to_rgb(L, ab) - color.lab_to_rgb_np(L, ab)).max() < 1e-4
    lab_t = torch.from_numpy(np.concatenate([L[None], ab.transpose(2, 0, 1)], 0))
    keep = color.lab_to_rgb_keep_L(lab_t).numpy().transpose(1, 2, 0)
    assert np.abs(lab.lab_to_rgb_keep_L(L, ab) - keep).max() < 1e-4
    u8 = rng.integers(0, 256, (16, 24, 3)).astype(np.uint8)
    assert np.abs(_rgb8_to_L(u8) - color.rgb_to_L_np(u8 / 255.0)).max() < 1e-3
    gray = np.repeat(u8[..., :1], 3, axis=2)
    rgb, Lg = decode_frame(gray.tobytes(), 24, 16)
    assert rgb is None and np.abs(Lg - color.gray_to_L_np(u8[..., 0] / 255.0)).max() < 1e-3


def test_frames_recipe_smooth_export_assemble_in_one_run(clip, tmp_path):
    frames, out = tmp_path / "frames", tmp_path / "film_color.mp4"
    summary, _ = run_recipe([
        {"uses": "load", "with": {"source": str(clip)}},
        {"uses": "fake_colorize", "with": {}},
        {"uses": "temporal_smooth", "with": {"strength": 0.7}},
        {"uses": "video_export", "with": {"out": str(frames), "frames": "output", "pass_items": False}},
        {"uses": "video_assemble", "with": {"frames": str(frames / "film"), "out": str(out),
                                            "audio_from": str(clip)}},
    ], tmp_path)
    assert summary["failed"] == 0 and summary["status"] in ("ok", "items_failed")
    info = read_info(out)
    assert info.packets == 50 and info.fps == 25 and audio_md5(out) == audio_md5(clip)
    a, b = _L(decode_all(clip)), _L(decode_all(out))
    assert max(float(np.abs(x - y).mean()) for x, y in zip(a, b)) < 1.5


def test_foreign_file_at_target_is_not_replaced(clip, tmp_path):
    out = tmp_path / "mine.mp4"
    out.write_bytes(b"user data")
    summary, ctx = _colorize(clip, out, tmp_path)
    assert out.read_bytes() == b"user data"
    assert summary["failed"] == 1 and "not written by colorbatch" in ctx.failures[0]["error"]


def test_audio_that_the_target_container_cannot_hold(tmp_path):
    import subprocess
    from video_testlib import ffmpeg

    avi = tmp_path / "pcm.avi"
    subprocess.run([ffmpeg(), "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=1",
                    "-f", "lavfi", "-i", "sine=duration=1", "-vf", "hue=s=0", "-c:v", "mpeg4", "-c:a", "pcm_s16le",
                    "-shortest", str(avi)], check=True)
    out = tmp_path / "o" / "x.webm"
    out.parent.mkdir()
    summary, ctx = _colorize(avi, out, tmp_path)
    assert summary["failed"] == 1 and "x.webm" in ctx.failures[0]["error"]
    assert list(out.parent.iterdir()) == []  # nothing written, no work folder left
    ok = tmp_path / "o" / "x.avi"
    summary, _ = _colorize(avi, ok, tmp_path)
    assert summary["failed"] == 0 and audio_md5(ok) == audio_md5(avi)


def test_one_output_file_for_several_videos_is_refused(clip, tmp_path):
    src = tmp_path / "two"
    src.mkdir()
    shutil.copy(clip, src / "a.mp4")
    shutil.copy(clip, src / "b.mp4")
    summary, _ = _colorize(src, tmp_path / "one.mp4", tmp_path)
    assert summary["status"] == "failed" and "several videos" in summary["error"]
    assert not (tmp_path / "one.mp4").exists()
