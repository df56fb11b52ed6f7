"""The ``video`` source: frames of video files, decoded lazily, one Item each.

``enumerate(source, options, ctx)`` returns a :class:`VideoFrames`: a lazy
sequence whose iteration decodes frames one at a time through the ffmpeg binary
of imageio-ffmpeg (``imageio_ffmpeg.read_frames``, the backend of imageio's
ffmpeg plugin), so memory stays flat however long the film. Each item has
``kind="video-frame"``, ``L`` (and ``rgb`` for colour frames) filled, and
``meta`` with the video's path, frame index, timestamp, rate, frame count,
rotation and audio streams. The last frame of a video carries
``meta["last"] = True`` (the reader looks one frame ahead), so the output knows
when a video is complete.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Iterator

import numpy as np

from colorbatch.errors import ColorbatchError, ImageReadError
from colorbatch.item import Item

from colorbatch_video import lab
from colorbatch_video.probe import VIDEO_EXTENSIONS, VideoInfo, probe, scan_timing

KIND = "video-frame"
GRAY_TOLERANCE = 3  # max |r-g|, |g-b| (of 255) for a frame to count as grayscale


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def video_paths(source) -> tuple[list[Path], Path]:
    """The video files a ``source`` names (file or folder, recursive) and their root."""
    p = Path(str(source)).expanduser()
    if p.is_file():
        return [p], p.parent
    if p.is_dir():
        found = sorted(
            (q for q in p.rglob("*") if q.is_file() and is_video(q) and not _hidden(q, p)),
            key=lambda q: q.relative_to(p).as_posix(),
        )
        return found, p
    raise ColorbatchError(f"{p}: no such video file or folder; check the load step's source")


def _hidden(q: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in q.relative_to(root).parts)


def read_info(path: Path) -> VideoInfo:
    """Probe and scan ``path``; for variable frame rate choose the constant rate
    that keeps its frame count over its duration."""
    info = scan_timing(probe(path))
    if info.vfr and info.duration and info.packets:
        from fractions import Fraction

        info.fps = Fraction(info.packets / info.duration).limit_denominator(1001)
    return info


def decode_frame(raw: bytes, width: int, height: int) -> tuple[np.ndarray | None, np.ndarray]:
    """rgb24 bytes -> (rgb float32 or None for a gray frame, L* float32)."""
    u8 = np.frombuffer(raw, np.uint8).reshape(height, width, 3)
    r = u8[..., 0].astype(np.int16)
    spread = max(int(np.abs(r - u8[..., 1]).max()), int(np.abs(r - u8[..., 2]).max()))
    if spread <= GRAY_TOLERANCE:
        gray = u8.mean(axis=2, dtype=np.float32) / 255.0
        return None, lab.gray_to_L(gray)
    rgb = u8.astype(np.float32) / 255.0
    return rgb, lab.rgb_to_L(rgb)


def iter_raw_frames(info: VideoInfo, start: int = 0) -> Iterator[bytes]:
    """rgb24 frames of ``info.path``, upright (rotation applied), at the rate of
    ``info.fps`` (variable rate is resampled to it; constant rate is passed
    through frame by frame), from frame ``start`` on."""
    import imageio_ffmpeg

    out = ["-map", f"0:{info.video_index}"]
    filters = []
    if start > 0:
        filters.append(f"select=gte(n\\,{int(start)})")
    if filters:
        out += ["-vf", ",".join(filters)]
    if info.vfr:
        out += ["-fps_mode", "cfr", "-r", f"{info.fps.numerator}/{info.fps.denominator}"]
    else:
        out += ["-fps_mode", "passthrough"]
    gen = imageio_ffmpeg.read_frames(str(info.path), pix_fmt="rgb24", output_params=out)
    try:
        meta = next(gen)
        w, h = meta["size"]
        if (w, h) != (info.width, info.height):  # trust what the decoder delivers
            info.width, info.height = int(w), int(h)
        yield from gen
    finally:
        gen.close()


def frame_items(path: Path, root: Path, ctx=None, start: int = 0) -> Iterator[Item]:
    """The frames of one video as Items, decoded lazily; a bad file raises
    ImageReadError before any frame (or, when it breaks mid-way, after the
    frames that could be read, with the last of them marked ``last``)."""
    info = read_info(path)
    try:
        rel = path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        rel = path.name
    st = path.stat()
    base = {
        "video": str(path),
        "video_id": rel,
        "input_size": st.st_size,
        "input_mtime_ns": st.st_mtime_ns,
        **info.as_meta(),
    }
    if info.vfr:
        if ctx is not None:
            ctx.warn(f"{path}: variable frame rate; decoded at a constant {float(info.fps):.3f} fps "
                     "(frames repeated or dropped to stay in sync with the sound)")
    fps = float(info.fps)
    index = start
    pending: Item | None = None
    frames = iter_raw_frames(info, start)
    error: Exception | None = None
    try:
        while True:
            try:
                raw = next(frames)
            except StopIteration:
                break
            except (RuntimeError, OSError) as exc:  # ffmpeg died mid-way
                error = exc
                break
            if len(raw) != info.width * info.height * 3:
                error = ImageReadError(path, f"frame {index}: short frame data (truncated file?)")
                break
            rgb, L = decode_frame(raw, info.width, info.height)
            item = Item(
                id=f"{rel}#{index:06d}",
                path=path,
                root=root,
                kind=KIND,
                rgb=rgb,
                L=L,
                meta={**base, "frame_index": index, "timestamp": round(index / fps, 6), "last": False},
            )
            if pending is not None:
                yield pending
            pending = item
            index += 1
    finally:
        frames.close()
    if pending is None and start == 0:
        reason = f"no frame could be decoded ({_short(error)})" if error else "no frame could be decoded"
        raise ImageReadError(path, reason)
    expected = info.n_frames
    if pending is not None:
        pending.meta["last"] = True
        pending.meta["n_frames_read"] = index
        if error is not None or (expected and index < expected * 0.98 - 1):
            note = f"only {index} of ~{expected} frames could be decoded (truncated or damaged file?)"
            pending.notes.append(note)
            pending.meta["truncated"] = True
            if ctx is not None:
                ctx.warn(f"{path}: {note}")
        yield pending


def _short(exc) -> str:
    text = " ".join(str(exc).split())
    return text[:200]


class VideoFrames(Sequence):
    """Lazy frames of one or more videos.

    Iterating decodes frames in order, one at a time. ``len()`` is the estimated
    total (probed once per file); indexing (``frames[i]``) decodes that one frame
    and is slow: iterate instead. A video that cannot be read is reported with
    ``ctx.fail`` (path and reason) and skipped; the others go on.
    """

    def __init__(self, paths: list[Path], root: Path, ctx=None):
        self.paths = list(paths)
        self.root = root
        self.ctx = ctx
        self._counts: list[int] | None = None

    def _estimate(self) -> list[int]:
        if self._counts is None:
            counts = []
            for p in self.paths:
                try:
                    counts.append(read_info(p).n_frames)
                except ImageReadError:
                    counts.append(0)
            self._counts = counts
        return self._counts

    def __len__(self) -> int:
        return sum(self._estimate())

    def __iter__(self) -> Iterator[Item]:
        for p in self.paths:
            try:
                yield from frame_items(p, self.root, self.ctx)
            except ImageReadError as exc:
                if self.ctx is None:
                    raise
                self.ctx.fail(Item(id=p.name, path=p, kind=KIND), exc)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        for p, n in zip(self.paths, self._estimate()):
            if i < n:
                for item in frame_items(p, self.root, self.ctx, start=i):
                    return item
                break
            i -= n
        raise IndexError("frame index out of range")


def enumerate_source(source, options=None, ctx=None) -> VideoFrames:
    """SourceDef.enumerate for ``layout = "video"`` and for claimed video files."""
    paths, root = video_paths(source)
    if not paths:
        raise ColorbatchError(f"{source}: no video files found (looked for {', '.join(VIDEO_EXTENSIONS[:6])} ...)")
    return VideoFrames(paths, root, ctx)
