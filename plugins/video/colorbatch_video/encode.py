"""Encoding frames into a video in resumable chunks, then muxing the audio.

A :class:`ChunkedEncoder` writes one output video. Frames (uint8 HxWx3) are
piped as raw rgb24 into an ffmpeg process that encodes one chunk of
``chunk_frames`` frames into a segment file in a hidden work folder next to the
target (``.<name>.colorbatch-parts/``). When a chunk is finished its segment is
renamed into place and ``state.json`` records it, so an interrupted run resumes
after the last finished chunk. At the end the segments are joined with ffmpeg's
concat demuxer, the original's audio streams are copied in untouched
(``-c:a copy``), and the result is written to a temporary file in the target's
folder and moved into place with ``os.replace``: the video appears only when
complete.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from colorbatch.api import ColorbatchError, ItemError

from colorbatch_video.probe import ffmpeg_exe
from colorbatch_video.settings import VideoSettings

STATE_FILE = "state.json"
SMOOTH_FILE = "smooth.npz"
_SEG_CONTAINER = {"libx264": "mp4", "libx265": "mp4", "libvpx-vp9": "mp4", "libaom-av1": "mp4",
                  "libsvtav1": "mp4", "h264": "mp4", "hevc": "mp4"}


def default_codec(target: Path) -> str:
    return "libvpx-vp9" if target.suffix.lower() == ".webm" else "libx264"


def codec_args(settings: VideoSettings, codec: str, width: int, height: int) -> list[str]:
    odd = width % 2 or height % 2
    pix = settings.pix_fmt or ("yuv444p" if odd and codec in ("libx264", "libx265") else "yuv420p")
    args = ["-c:v", codec]
    if codec in ("libx264", "libx265"):
        args += ["-preset", settings.preset, "-crf", str(settings.crf)]
    elif codec in ("libvpx-vp9", "libaom-av1"):
        args += ["-crf", str(settings.crf), "-b:v", "0", "-row-mt", "1"]
        if codec == "libvpx-vp9":
            args += ["-deadline", "good", "-cpu-used", "4"]
    elif codec == "libsvtav1":
        args += ["-crf", str(settings.crf)]
    # rgb -> yuv with the BT.709 matrix, and say so in the stream, so players
    # (and our own reader) convert back with the same one
    args += ["-vf", f"scale=out_color_matrix=bt709:out_range=tv,format={pix}",
             "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"]
    return args


def _atomic_json(path: Path, data: dict) -> None:
    from colorbatch.api import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=1, default=str))


def _tail(path: Path, n: int = 3) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])


class ChunkedEncoder:
    """Encodes the frames of one video into ``target`` in resumable chunks.

    identity:  a dict (input file identity, settings, model) that must match for
               a previous run's finished chunks to be reused.
    """

    def __init__(self, target: Path, *, width: int, height: int, fps: str, settings: VideoSettings,
                 identity: dict, audio_from: Path | None = None, metadata: dict | None = None):
        self.target = Path(target)
        self.width, self.height = int(width), int(height)
        self.fps = fps  # "num/den"
        self.settings = settings
        self.identity = identity
        self.audio_from = Path(audio_from) if audio_from else None
        self.metadata = metadata or {}
        self.codec = settings.codec or default_codec(self.target)
        self.work = self.target.parent / f".{self.target.name}.colorbatch-parts"
        self.seg_ext = _SEG_CONTAINER.get(self.codec, "mkv")
        self.chunks: list[dict] = []
        self._proc: subprocess.Popen | None = None
        self._tmp_seg: Path | None = None
        self._log = None
        self._in_chunk = 0
        self.frames_done = 0  # frames in finished chunks
        self.frames_written = 0  # frames handed to ffmpeg (finished chunks + current one)
        self.smooth_state: dict | None = None
        self._open_state()

    # ---- resume state -------------------------------------------------------
    @staticmethod
    def work_dir(target: Path) -> Path:
        return target.parent / f".{target.name}.colorbatch-parts"

    @staticmethod
    def read_state(target: Path) -> dict | None:
        try:
            return json.loads((ChunkedEncoder.work_dir(target) / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None

    def _open_state(self) -> None:
        state = self.read_state(self.target)
        if state and state.get("identity") == self.identity and state.get("size") == [self.width, self.height]:
            chunks = [c for c in state.get("chunks", []) if (self.work / c["file"]).is_file()]
            # keep only an unbroken run of chunks from frame 0
            good, nxt = [], 0
            for c in chunks:
                if c["first"] != nxt:
                    break
                good.append(c)
                nxt += c["count"]
            self.chunks = good
            self.frames_done = self.frames_written = nxt
            if good:
                try:
                    with np.load(self.work / SMOOTH_FILE) as z:
                        self.smooth_state = {k: z[k] for k in z.files}
                    if int(state.get("smooth_at", -1)) != nxt:
                        self.smooth_state = None
                except (OSError, ValueError):
                    self.smooth_state = None
            return
        if self.work.exists():
            shutil.rmtree(self.work, ignore_errors=True)

    def _save_state(self, smooth_state: dict | None) -> None:
        if smooth_state:
            tmp = self.work / f".{SMOOTH_FILE}.tmp-{os.getpid()}.npz"
            np.savez(tmp, **smooth_state)
            os.replace(tmp, self.work / SMOOTH_FILE)
        _atomic_json(self.work / STATE_FILE, {
            "identity": self.identity,
            "size": [self.width, self.height],
            "fps": self.fps,
            "target": self.target.name,
            "chunks": self.chunks,
            "smooth_at": self.frames_done if smooth_state else -1,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
        })

    # ---- chunks ---------------------------------------------------------------
    def _start_chunk(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        index = len(self.chunks)
        self._tmp_seg = self.work / f"seg_{index:05d}.part.{self.seg_ext}"
        self._log = open(self.work / f"seg_{index:05d}.log", "wb")
        cmd = [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.width}x{self.height}",
            "-framerate", self.fps, "-i", "-",
            *codec_args(self.settings, self.codec, self.width, self.height),
            "-an", "-f", "mp4" if self.seg_ext == "mp4" else "matroska", str(self._tmp_seg),
        ]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)
        self._in_chunk = 0

    def write(self, frame: np.ndarray) -> None:
        """Append one frame (uint8 HxWx3 at the video's size)."""
        if frame.shape[:2] != (self.height, self.width):
            raise ItemError(
                f"frame is {frame.shape[1]}x{frame.shape[0]} but the video is {self.width}x{self.height}"
            )
        if self._proc is None:
            self._start_chunk()
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
        except (BrokenPipeError, OSError):
            self._proc.wait()
            reason = _tail(self.work / f"seg_{len(self.chunks):05d}.log")
            self.abort()
            raise ColorbatchError(f"{self.target}: the encoder ({self.codec}) stopped: {reason or 'broken pipe'}")
        self._in_chunk += 1
        self.frames_written += 1

    def chunk_full(self) -> bool:
        return self._proc is not None and self._in_chunk >= self.settings.chunk_frames

    def finish_chunk(self, smooth_state: dict | None = None) -> None:
        """Close the current chunk's encoder and record the segment."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        try:
            proc.stdin.close()
        except OSError:
            pass
        rc = proc.wait()
        if self._log:
            self._log.close()
        index = len(self.chunks)
        log = self.work / f"seg_{index:05d}.log"
        if rc != 0 or not self._tmp_seg or not self._tmp_seg.is_file():
            reason = _tail(log)
            self.abort()
            raise ColorbatchError(f"{self.target}: encoding with {self.codec} failed: {reason or f'exit code {rc}'}")
        final = self.work / f"seg_{index:05d}.{self.seg_ext}"
        os.replace(self._tmp_seg, final)
        log.unlink(missing_ok=True)
        self._tmp_seg = None
        self.chunks.append({"index": index, "first": self.frames_done, "count": self._in_chunk, "file": final.name})
        self.frames_done += self._in_chunk
        self._in_chunk = 0
        self._save_state(smooth_state)

    def abort(self) -> None:
        """Stop the chunk in progress and drop it; finished chunks stay for a resume."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.kill()
            except OSError:
                pass
            try:
                proc.stdin.close()
            except OSError:
                pass
            proc.wait()
        if self._log:
            self._log.close()
            self._log = None
        if self._tmp_seg is not None:
            self._tmp_seg.unlink(missing_ok=True)
            self._tmp_seg = None
        (self.work / f"seg_{len(self.chunks):05d}.log").unlink(missing_ok=True)
        self.frames_written = self.frames_done
        self._in_chunk = 0

    # ---- the end ------------------------------------------------------------------
    def finalize(self) -> Path:
        """Join the chunks, copy the audio in, move the file into place."""
        self.finish_chunk()
        if not self.chunks:
            raise ItemError(f"{self.target}: no frames to write")
        listing = self.work / "concat.txt"
        listing.write_text("".join(f"file '{c['file']}'\n" for c in self.chunks))
        suffix = self.target.suffix or ".mp4"
        tmp = self.target.parent / f".{self.target.stem}.tmp-{os.getpid()}{suffix}"
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
               "-f", "concat", "-safe", "0", "-i", str(listing)]
        if self.audio_from is not None and self.settings.audio:
            cmd += ["-i", str(self.audio_from), "-map", "0:v:0", "-map", "1:a?", "-map_metadata", "1"]
        else:
            cmd += ["-map", "0:v:0"]
        cmd += ["-c", "copy", "-map_chapters", "-1"]
        for key, value in self.metadata.items():
            cmd += ["-metadata", f"{key}={value}"]
        if suffix.lower() in (".mp4", ".m4v", ".mov"):
            cmd += ["-movflags", "+faststart"]
        cmd.append(str(tmp))
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
        if proc.returncode != 0 or not tmp.is_file():
            tmp.unlink(missing_ok=True)
            shutil.rmtree(self.work, ignore_errors=True)  # would fail the same way again
            reason = " | ".join(ln.strip() for ln in proc.stderr.splitlines()[-3:] if ln.strip())
            hint = ""
            if "codec not currently supported in container" in proc.stderr or "Could not find tag" in proc.stderr:
                hint = f" (the original's audio cannot be stored in {suffix} without re-encoding; use the original's extension)"
            raise ItemError(f"{self.target}: joining the video failed: {reason}{hint}")
        os.replace(tmp, self.target)
        shutil.rmtree(self.work, ignore_errors=True)
        return self.target
