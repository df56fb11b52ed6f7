"""The ``video-frame`` output: colorized frames streamed back into a video.

The core ``save`` step hands every item of kind ``video-frame`` to this output.
Frames arrive in order; each is (by default) temporally smoothed, recomposed
with the frame's own L* and piped into a :class:`ChunkedEncoder`. The frame
marked ``meta["last"]`` finishes the video: chunks are joined, the original's
audio is copied in, and the file is moved into place.

Where the video goes: ``save``'s ``out`` is a folder (the video keeps its path
relative to the source folder and its container), or, for a single video, a
file name with a video extension (``--out film_color.mp4``).

Resume: a finished video is recorded in ``.colorbatch-video.jsonl`` next to it
(input size and mtime, settings, model); a re-run skips all its frames. A video
interrupted mid-way keeps its finished chunks; the re-run skips their frames and
encodes from the next chunk on.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from colorbatch.api import ColorbatchError, ItemError, StepError

from colorbatch_video import lab
from colorbatch_video.encode import ChunkedEncoder
from colorbatch_video.probe import VIDEO_EXTENSIONS
from colorbatch_video.settings import VideoSettings, resolve
from colorbatch_video.smooth import TemporalSmoother

RECORD = ".colorbatch-video.jsonl"
IMAGE_FORMATS = {"png", "jpg", "jpeg", "webp", "tif", "tiff", "bmp"}


def _opt(options, name, default=None):
    if options is None:
        return default
    if isinstance(options, dict):
        return options.get(name, default)
    return getattr(options, name, default)


def frame_array(item, smoother: TemporalSmoother | None) -> np.ndarray:
    """The uint8 HxWx3 frame to encode for ``item``."""
    L = item.L
    if item.ab is not None and L is not None:
        ab = item.ab
        if smoother is not None and not item.meta.get("smoothed"):
            ab = smoother(L, ab)
            item.meta["smoothed"] = True
        return lab.compose(L, ab)
    if item.output is not None:
        out = np.asarray(item.output)
        if out.dtype != np.uint8:
            out = lab.to_uint8(out.astype(np.float32) / (255.0 if out.max() > 1.0 else 1.0))
        return np.repeat(out[..., None], 3, axis=2) if out.ndim == 2 else out[..., :3]
    if item.rgb is not None:
        return lab.to_uint8(item.rgb)
    if L is not None:
        return lab.compose(L, None)
    raise ItemError(f"{item.label}: frame {item.meta.get('frame_index')} has no pixels to write")


def _identity(item, settings: VideoSettings, model_id, steps=()) -> dict:
    m = item.meta
    return {
        "input": {"path": str(Path(m["video"]).resolve()), "size": m.get("input_size"),
                  "mtime_ns": m.get("input_mtime_ns")},
        "settings": settings.identity(),
        "model": model_id,
        "steps": list(steps),
    }


class _Job:
    def __init__(self, encoder: ChunkedEncoder, smoother: TemporalSmoother | None, item):
        self.encoder = encoder
        self.smoother = smoother
        self.video = item.meta["video"]
        self.n_frames = int(item.meta.get("n_frames") or 0)
        self.last_frame: np.ndarray | None = None
        self.missing: list[int] = []
        self.repeated = 0
        self.notes: list[str] = []
        if smoother is not None and encoder.smooth_state:
            smoother.load_state(encoder.smooth_state)


class VideoOutput:
    """Writes ``video-frame`` items; see the module docs."""

    def __init__(self, save_options, ctx):
        self.ctx = ctx
        if ctx is not None and getattr(ctx, "world_size", 1) > 1:
            raise StepError(
                "videos cannot be written under torchrun (each rank would get every n-th frame); "
                "colorize videos in a single process"
            )
        out = _opt(save_options, "out")
        if out is None:
            raise ColorbatchError("save: missing `out` (a folder, or a video file name for one video)")
        self.out = Path(str(out)).expanduser()
        self.overwrite = bool(_opt(save_options, "overwrite", False))
        fmt = (_opt(save_options, "format") or "").lower().lstrip(".")
        self.container = f".{fmt}" if fmt and f".{fmt}" in VIDEO_EXTENSIONS else None
        self._format_ignored = bool(fmt) and fmt in IMAGE_FORMATS
        self.settings = resolve(ctx)
        from colorbatch.api import pipeline_signature

        self.steps = pipeline_signature(ctx)  # the steps before save: part of the resume key
        self.single_file = self.out.suffix.lower() in VIDEO_EXTENSIONS and not self.out.is_dir()
        if self.single_file:
            self._check_single_source()
        self.jobs: dict[str, _Job] = {}
        self._single_video: str | None = None
        self._records: dict[Path, dict] = {}
        self._state_cache: dict[Path, dict | None] = {}
        self._refused: set[str] = set()

    def _check_single_source(self) -> None:
        """A file name as ``out`` needs one video in: refuse folders and globs up front."""
        plan = getattr(self.ctx, "plan", None)
        current = getattr(self.ctx, "current", None)
        for cfg in getattr(plan, "steps", []) or []:
            if current is not None and cfg.index >= current.index:
                break
            src = getattr(cfg.options, "source", None)
            if isinstance(src, str) and not Path(src).expanduser().is_file():
                raise StepError(
                    f"save: out={self.out} is one file but the source {src} may hold several videos; "
                    "give a folder as out"
                )

    # ---- where things go ---------------------------------------------------------
    def target(self, item) -> Path:
        video = item.meta.get("video")
        if video is None:
            raise ItemError(f"{item.label}: not a video frame (no meta['video'])")
        if self.single_file:
            if self._single_video is None:
                self._single_video = video
            elif self._single_video != video:
                raise StepError(
                    f"save: out={self.out} is one file but the input holds several videos; "
                    "give a folder as out"
                )
            self._never_the_input(self.out, video)
            return self.out
        rel = item.meta.get("video_id")
        if item.root is not None and item.path is not None:
            try:
                rel = Path(item.path).resolve().relative_to(Path(item.root).resolve()).as_posix()
            except ValueError:
                pass
        rel = Path(rel or Path(video).name)
        if self.container:
            rel = rel.with_suffix(self.container)
        target = self.out / rel
        self._never_the_input(target, video)
        return target

    @staticmethod
    def _never_the_input(target: Path, video) -> None:
        from colorbatch.api import same_file

        if same_file(Path(target), Path(video)):
            raise ItemError(
                f"{video}: the output {target} is the input itself; an input is never an output, "
                "whatever the flags (--overwrite included); choose another out"
            )

    def _model_id(self):
        return self.ctx.state.model_id if self.ctx is not None else None

    # ---- resume -----------------------------------------------------------------
    def _record(self, target: Path) -> dict | None:
        folder = target.parent
        if folder not in self._records:
            recs = {}
            try:
                for line in (folder / RECORD).read_text().splitlines():
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    recs[rec.get("output")] = rec
            except OSError:
                pass
            self._records[folder] = recs
        return self._records[folder].get(target.name)

    def is_done(self, item) -> bool:
        if self.overwrite or item.kind != "video-frame" or "video" not in item.meta:
            return False
        try:
            target = self.target(item)
        except (ItemError, ColorbatchError):
            return False
        video = item.meta["video"]
        if video in self.jobs:  # being written now
            return False
        ident = _identity(item, self.settings, self._model_id(), self.steps)
        rec = self._record(target)
        if rec and rec.get("identity") == ident and target.is_file():
            return True
        if target not in self._state_cache:
            self._state_cache[target] = ChunkedEncoder.read_state(target)
        state = self._state_cache[target]
        if state and state.get("identity") == ident:
            done = sum(c["count"] for c in state.get("chunks", []))
            return int(item.meta.get("frame_index", -1)) < done
        return False

    # ---- writing ----------------------------------------------------------------
    def _open(self, item, target: Path) -> _Job:
        meta = item.meta
        if self._format_ignored:
            self.ctx.log(f"note: format applies to images; {Path(meta['video']).name} keeps a video container")
            self._format_ignored = False
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.overwrite:
            shutil.rmtree(ChunkedEncoder.work_dir(target), ignore_errors=True)
        h, w = item.L.shape[:2] if item.L is not None else (meta["height"], meta["width"])
        fps = meta.get("fps_rational") or str(meta.get("fps"))
        from colorbatch.api import __version__

        tags = {"comment": f"colorized by colorbatch {__version__}"
                + (f" (model {self._model_id()})" if self._model_id() else "")}
        enc = ChunkedEncoder(
            target, width=w, height=h, fps=fps, settings=self.settings,
            identity=_identity(item, self.settings, self._model_id(), self.steps),
            audio_from=Path(meta["video"]), metadata=tags,
        )
        s = self.settings
        smoother = TemporalSmoother(s.strength, s.scene_cut, s.motion_sigma) if s.smooth and s.strength > 0 else None
        job = _Job(enc, smoother, item)
        if enc.frames_done:
            self.ctx.log(f"{target}: resuming after frame {enc.frames_done} ({len(enc.chunks)} chunks done)")
        return job

    def write(self, item) -> Path | None:
        video = item.meta["video"]
        if video in self._refused:
            return None  # reported once, at its first frame
        try:
            target = self.target(item)
        except ItemError:
            self._refused.add(video)
            raise
        for other in [v for v in self.jobs if v != video]:  # the previous video ended early
            self._finish(other)
        job = self.jobs.get(video)
        if job is None:
            if target.exists() and not self.overwrite and self._record(target) is None:
                self._refused.add(video)
                raise ItemError(
                    f"{video}: {target} exists and was not written by colorbatch; refusing to replace it "
                    "(choose another out, or overwrite it with --overwrite); its other frames are skipped"
                )
            job = self.jobs[video] = self._open(item, target)
        enc = job.encoder
        index = int(item.meta.get("frame_index", enc.frames_written))
        if index < enc.frames_written:
            return None  # already encoded (a finished chunk of a resumed run)
        frame = frame_array(item, job.smoother)
        try:
            if index > enc.frames_written:  # frames lost on the way (failed in an earlier step)
                fill = job.last_frame if job.last_frame is not None else frame
                job.missing.extend(range(enc.frames_written, index))
                while enc.frames_written < index:
                    self._put(job, fill)
            self._put(job, frame)
        except ColorbatchError as exc:  # the encoder failed: give up this video, once
            self.jobs.pop(video, None)
            enc.abort()
            self._refused.add(video)
            raise ItemError(f"{exc} (its other frames are skipped)") from None
        job.last_frame = frame
        if item.meta.get("repeated"):
            job.repeated += 1
        if item.meta.get("last"):
            return self._finish(video)
        return None  # buffered: the video appears when its last frame is written

    def _put(self, job: _Job, frame: np.ndarray) -> None:
        job.encoder.write(frame)
        if job.encoder.chunk_full():
            job.encoder.finish_chunk(job.smoother.state() if job.smoother else None)

    def _finish(self, video: str) -> Path:
        job = self.jobs.pop(video)
        enc = job.encoder
        try:
            if job.missing:
                shown = ", ".join(str(i) for i in job.missing[:5]) + (" ..." if len(job.missing) > 5 else "")
                self.ctx.warn(f"{video}: {len(job.missing)} frame(s) missing ({shown}); "
                              "the previous frame was repeated in their place")
            if job.repeated:
                self.ctx.warn(f"{video}: the file ends before its last {job.repeated} frame(s) "
                              "(truncated?); the last readable frame was repeated in their place")
            path = enc.finalize()
        except BaseException:
            enc.abort()
            raise
        ident = enc.identity
        rec = {"output": path.name, "input": ident["input"]["path"], "identity": ident,
               "frames": enc.frames_done, "fps": enc.fps, "size": [enc.width, enc.height],
               "missing_frames": len(job.missing), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with open(path.parent / RECORD, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
        self._records.pop(path.parent, None)
        self.ctx.event("video_written", {"video": video, "output": str(path), "frames": enc.frames_done,
                                         "missing_frames": len(job.missing)})
        return path

    def close(self) -> None:
        interrupted = bool(getattr(self.ctx, "interrupted", False)) or getattr(self.ctx, "_pending_error", None) is not None
        errors = []
        for video in list(self.jobs):
            if interrupted:
                job = self.jobs.pop(video)
                job.encoder.abort()  # finished chunks stay for the next run
                continue
            try:
                self._finish(video)  # the stream ended without the last frame
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
        if errors:
            raise errors[0]


def factory(save_options, ctx) -> VideoOutput:
    return VideoOutput(save_options, ctx)
