"""The ``video`` source: frames of video files, decoded lazily, one Item each.

``enumerate(source, options, ctx)`` returns one light :class:`FrameItem` per
frame (no pixels: the core ``files`` layout and ``load`` list what a source
returns). A frame's pixels are decoded when a later step first reads
``item.L`` or ``item.rgb``, by a per-process sequential reader over the ffmpeg
binary of imageio-ffmpeg (``imageio_ffmpeg.read_frames``, the backend of
imageio's ffmpeg plugin): frames are decoded in order, one at a time, and
dropped after saving, so pixel memory stays flat however long the film. Each item has
``kind="video-frame"``, ``L`` (and ``rgb`` for colour frames) filled, and
``meta`` with the video's path, frame index, timestamp, rate, frame count,
rotation and audio streams. The last frame of a video carries
``meta["last"] = True`` (the frame count comes from a demux pass that counts
packets, exact for constant frame rate), so the output knows when a video is
complete.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Iterator

import numpy as np

from colorbatch.api import ColorbatchError, ImageReadError
from colorbatch.api import Item

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


_LUTS: dict[str, np.ndarray] = {}


def _luts() -> dict[str, np.ndarray]:
    """Lookup tables for 8-bit frames: L* of a gray level (indexed by r+g+b,
    0..765) and sRGB -> linear; numpy only (the core's helpers agree to ~1e-3)."""
    if not _LUTS:
        c = np.arange(256, dtype=np.float64) / 255.0
        _LUTS["linear"] = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)
        g = np.arange(766, dtype=np.float64) / 765.0
        lin = np.where(g <= 0.04045, g / 12.92, ((g + 0.055) / 1.055) ** 2.4)
        f = np.where(lin > 216 / 24389, np.cbrt(lin), (24389 / 27 * lin + 16) / 116)
        _LUTS["gray_L"] = (116 * f - 16).astype(np.float32)
    return _LUTS


def _rgb8_to_L(u8: np.ndarray) -> np.ndarray:
    """L* (D65) of 8-bit sRGB pixels, in numpy (fast, matches the core to ~1e-4)."""
    lin = _luts()["linear"]
    y = 0.212671 * lin[u8[..., 0]] + 0.715160 * lin[u8[..., 1]] + 0.072169 * lin[u8[..., 2]]
    f = np.where(y > 216 / 24389, np.cbrt(y), (24389 / 27 * y + 16) / 116)
    return (116 * f - 16).astype(np.float32)


def decode_frame_u8(raw: bytes, width: int, height: int) -> tuple[np.ndarray | None, np.ndarray]:
    """rgb24 bytes -> (uint8 HxWx3 for a colour frame or None for a gray one, L* float32)."""
    u8 = np.frombuffer(raw, np.uint8).reshape(height, width, 3)
    r = u8[..., 0].astype(np.int16)
    spread = max(int(np.abs(r - u8[..., 1]).max()), int(np.abs(r - u8[..., 2]).max()))
    if spread <= GRAY_TOLERANCE:
        total = u8.sum(axis=2, dtype=np.int16)
        return None, _luts()["gray_L"][total]
    return u8, _rgb8_to_L(u8)


def decode_frame(raw: bytes, width: int, height: int) -> tuple[np.ndarray | None, np.ndarray]:
    """rgb24 bytes -> (rgb float32 [0,1] or None for a gray frame, L* float32)."""
    u8, L = decode_frame_u8(raw, width, height)
    return (None if u8 is None else u8.astype(np.float32) / 255.0), L


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


class _Reader:
    """Sequential frame decoder for one video in this process, with a small cache.

    Asking for frame ``i`` decodes forward to it; asking for an earlier frame
    restarts ffmpeg at that frame. Frames past the end of the readable data (a
    truncated file) repeat the last good frame and are flagged.
    """

    def __init__(self, info: VideoInfo):
        self.info = info
        self._gen = None
        self.pos = 0  # index of the next frame the generator yields
        self.cache: dict[int, tuple] = {}
        self.eof_at: int | None = None
        self.last_good: tuple | None = None

    def _open(self, start: int) -> None:
        self.close()
        if self.info.vfr:
            start = 0  # frame numbers only match the input's at constant rate: read forward
        self._gen = iter_raw_frames(self.info, start)
        self.pos = start

    def frame(self, index: int):
        """(uint8 rgb or None, L, repeated: bool) of frame ``index``."""
        if index in self.cache:
            return self.cache[index]
        if self.eof_at is not None and index >= self.eof_at:
            if self.last_good is None:
                raise ImageReadError(self.info.path, f"frame {index}: no frame could be decoded")
            rgb, L, _ = self.last_good
            return rgb, L, True
        if self._gen is None or index < self.pos:
            self._open(index)
        w, h = self.info.width, self.info.height
        while self.pos <= index:
            try:
                raw = next(self._gen)
            except StopIteration:
                raw = None
            except (RuntimeError, OSError):
                raw = None
            if raw is None or len(raw) != self.info.width * self.info.height * 3:
                self.eof_at = self.pos
                self.close()
                return self.frame(index)
            w, h = self.info.width, self.info.height
            if self.pos >= index - 1:
                rgb, L = decode_frame_u8(raw, w, h)
                entry = (rgb, L, False)
                self.cache[self.pos] = entry
                self.last_good = entry
                for k in [k for k in self.cache if k < self.pos - 2]:
                    del self.cache[k]
            self.pos += 1
        return self.cache[index]

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()
            self._gen = None


_READERS: dict[str, _Reader] = {}
_INFOS: dict[str, VideoInfo] = {}
MAX_OPEN_READERS = 2


def _info_for(path: str) -> VideoInfo:
    info = _INFOS.get(path)
    if info is None:
        info = _INFOS[path] = read_info(Path(path))
    return info


def reader_for(path: str) -> _Reader:
    """This process's reader of ``path`` (at most a couple stay open)."""
    r = _READERS.get(path)
    if r is None:
        while len(_READERS) >= MAX_OPEN_READERS:
            old = next(iter(_READERS))
            _READERS.pop(old).close()
        r = _READERS[path] = _Reader(_info_for(path))
    return r


def release_reader(path: str) -> None:
    r = _READERS.pop(path, None)
    if r is not None:
        r.close()


class FrameItem(Item):
    """A video frame whose pixels are decoded when ``L`` or ``rgb`` is first read.

    Listing a film is cheap (no pixels); decoding happens in frame order as
    later steps ask for the pixels, one frame at a time. After the runner drops
    the pixels they are not decoded again.
    """

    def _pixels(self):
        d = self.__dict__
        if d.get("_state", 0) == 0:
            rgb, L, repeated = reader_for(self.meta["video"]).frame(int(self.meta["frame_index"]))
            d["_rgb8"], d["_L"], d["_state"] = rgb, L, 1
            if repeated:
                self.meta["repeated"] = True
                note = "the file ends before this frame (truncated?); the last readable frame is repeated"
                if note not in self.notes:
                    self.notes.append(note)
            if self.meta.get("last"):
                release_reader(self.meta["video"])

    def _set(self, key: str, value) -> None:
        d = self.__dict__
        if value is None and d.get("_state") == 1:
            d["_state"] = 2  # released: never decode again
        elif value is not None and d.get("_state", 0) == 0:
            d["_state"] = 1  # set by hand: no decoding
            d.setdefault("_rgb", None)
            d.setdefault("_L", None)
        d[key] = value

    @property
    def L(self):
        self._pixels()
        return self.__dict__.get("_L")

    @L.setter
    def L(self, value):
        self._set("_L", value)

    @property
    def rgb(self):
        """float32 [0, 1] (kept as uint8 until read, to hold less memory)."""
        self._pixels()
        d = self.__dict__
        if d.get("_rgb") is None and d.get("_rgb8") is not None:
            return d["_rgb8"].astype(np.float32) / 255.0
        return d.get("_rgb")

    @rgb.setter
    def rgb(self, value):
        self.__dict__.pop("_rgb8", None)
        self._set("_rgb", value)

    @property
    def decoded(self) -> bool:
        return self.__dict__.get("_state", 0) == 1

    def __repr__(self) -> str:
        return f"FrameItem(id={self.id!r}, frame={self.meta.get('frame_index')})"

    __eq__ = object.__eq__
    __hash__ = object.__hash__


def check_first_frame(info: VideoInfo) -> None:
    """Decode frame 0 so that a file whose header reads but whose frames do not
    is reported once, as one bad input."""
    try:
        for _ in iter_raw_frames(info):
            return
    except (RuntimeError, OSError) as exc:
        raise ImageReadError(info.path, f"no frame could be decoded ({_short(exc)})") from None
    raise ImageReadError(info.path, "no frame could be decoded (empty or damaged video stream)")


def frame_items(path: Path, root: Path, ctx=None) -> list[Item]:
    """Items for every frame of one video (pixels decoded later, on demand).

    Raises ImageReadError (one line: path and reason) for a file that holds no
    readable video.
    """
    info = read_info(path)
    _INFOS[str(path)] = info
    check_first_frame(info)
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
    if info.vfr and ctx is not None:
        ctx.warn(f"{path}: variable frame rate; decoded at a constant {float(info.fps):.3f} fps "
                 "(frames repeated or dropped to stay in sync with the sound)")
    fps = float(info.fps)
    n = info.n_frames
    if n <= 0:
        raise ImageReadError(path, "unknown duration and frame count; remux the file (ffmpeg -i in -c copy out.mkv)")
    items: list[Item] = []
    for i in range(n):
        items.append(FrameItem(
            id=f"{rel}#{i:06d}", path=path, root=root, kind=KIND,
            meta={**base, "frame_index": i, "timestamp": round(i / fps, 6), "last": i == n - 1},
        ))
    return items


def _short(exc) -> str:
    text = " ".join(str(exc).split())
    return text[:200]


class VideoFrames(Sequence):
    """The frames of one or more videos (the ``video`` layout), as lazy items.

    A video that cannot be read is reported with ``ctx.fail`` (path and reason)
    and left out; the others go on.
    """

    def __init__(self, paths: list[Path], root: Path, ctx=None):
        self.paths = list(paths)
        self.root = root
        self.ctx = ctx
        self._items: list[Item] | None = None

    def _all(self) -> list[Item]:
        if self._items is None:
            items: list[Item] = []
            for p in self.paths:
                try:
                    items.extend(frame_items(p, self.root, self.ctx))
                except ImageReadError as exc:
                    if self.ctx is None:
                        raise
                    self.ctx.fail(Item(id=p.name, path=p, kind=KIND), exc)
            self._items = items
        return self._items

    def __len__(self) -> int:
        return len(self._all())

    def __iter__(self) -> Iterator[Item]:
        return iter(self._all())

    def __getitem__(self, i):
        return self._all()[i]


def enumerate_source(source, options=None, ctx=None):
    """SourceDef.enumerate for ``layout = "video"`` and for claimed video files."""
    paths, root = video_paths(source)
    if not paths:
        raise ColorbatchError(f"{source}: no video files found (looked for {', '.join(VIDEO_EXTENSIONS[:6])} ...)")
    if len(paths) == 1 and Path(str(source)).is_file():
        return frame_items(paths[0], root, ctx)
    return VideoFrames(paths, root, ctx)
