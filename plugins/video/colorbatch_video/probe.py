"""What a video file holds: size, frame rate, duration, rotation, audio streams.

Probing runs the ffmpeg binary that the imageio-ffmpeg wheel ships
(``imageio_ffmpeg.get_ffmpeg_exe()``) with ``-i`` and reads its stream report,
so nothing beyond imageio-ffmpeg is needed (no ffprobe).
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from colorbatch.api import ImageReadError

VIDEO_EXTENSIONS = (
    ".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".m2ts",
    ".mts", ".wmv", ".flv", ".ogv", ".3gp", ".vob", ".mxf", ".dv",
)

# frame rates ffmpeg prints rounded to two decimals, and the NTSC rational they stand for
_NTSC = {
    "23.98": Fraction(24000, 1001),
    "29.97": Fraction(30000, 1001),
    "47.95": Fraction(48000, 1001),
    "59.94": Fraction(60000, 1001),
    "119.88": Fraction(120000, 1001),
}


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped by imageio-ffmpeg (or $IMAGEIO_FFMPEG_EXE)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass
class AudioStream:
    index: int  # stream index in the file
    codec: str
    sample_rate: int | None = None
    channels: str = ""

    def as_dict(self) -> dict:
        return {"index": self.index, "codec": self.codec, "sample_rate": self.sample_rate,
                "channels": self.channels}


@dataclass
class VideoInfo:
    path: Path
    width: int  # as displayed (after rotation)
    height: int
    fps: Fraction
    duration: float | None
    codec: str
    pix_fmt: str
    rotation: int = 0  # degrees, from the display matrix (frames are decoded upright)
    vfr: bool = False  # variable frame rate suspected (average fps differs from the base rate)
    tbr: Fraction | None = None
    audio: list[AudioStream] = field(default_factory=list)
    video_index: int = 0
    packets: int | None = None  # video packets counted by scan_timing (= frames for CFR)

    @property
    def n_frames(self) -> int:
        """Frame count: the packet count for constant-rate video, else duration x rate
        (the reader marks the real last frame either way)."""
        est = self.duration * float(self.fps) if self.duration else 0.0
        if self.packets and not self.vfr:
            # field-coded (interlaced) streams carry two packets per frame: trust the
            # packet count only when it agrees with duration x rate
            if not est or abs(self.packets - est) <= max(2.0, 0.05 * est):
                return self.packets
        if not self.duration:
            return 0
        return max(1, int(round(self.duration * float(self.fps))))

    def as_meta(self) -> dict:
        return {
            "width": self.width,
            "height": self.height,
            "fps": float(self.fps),
            "fps_rational": f"{self.fps.numerator}/{self.fps.denominator}",
            "duration": self.duration,
            "n_frames": self.n_frames,
            "codec": self.codec,
            "pix_fmt": self.pix_fmt,
            "rotation": self.rotation,
            "vfr": self.vfr,
            "audio": [a.as_dict() for a in self.audio],
        }


def parse_rate(text: str) -> Fraction | None:
    text = text.strip()
    if not text:
        return None
    if text in _NTSC:
        return _NTSC[text]
    mult = 1
    if text.endswith("k"):
        mult, text = 1000, text[:-1]
    try:
        value = Fraction(text) * mult
    except (ValueError, ZeroDivisionError):
        return None
    return value.limit_denominator(1001) if value > 0 else None


_DURATION = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_STREAM = re.compile(r"^\s*Stream #\d+:(\d+)(?:\[[^\]]*\])?(?:\([^)]*\))?:\s*(Video|Audio|Subtitle|Data|Attachment):\s*(.*)$")
_SIZE = re.compile(r",\s*(\d{1,6})x(\d{1,6})[\s,\[]")
_ROTATION = re.compile(r"rotation of\s*(-?\d+(?:\.\d+)?)\s*degrees")


def _reason(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "At least one output file" in ln:
            continue
        low = ln.lower()
        if any(w in low for w in ("invalid data", "moov atom", "no such file", "error", "permission")):
            return re.sub(r"^\[[^\]]*\]\s*", "", ln)
    return lines[-1] if lines else "ffmpeg could not read it"


def probe(path: str | Path) -> VideoInfo:
    """Read the stream report of ``path``; raise ImageReadError when it holds no
    readable video stream."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "file not found")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
    try:
        proc = subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
            capture_output=True, text=True, errors="replace", timeout=120,
        )
    except subprocess.TimeoutExpired:
        raise ImageReadError(path, "ffmpeg took too long to read the file header") from None
    return parse_report(path, proc.stderr)


def parse_report(path: Path, stderr: str) -> VideoInfo:
    duration = None
    m = _DURATION.search(stderr)
    if m:
        h, mi, s = m.groups()
        duration = int(h) * 3600 + int(mi) * 60 + float(s)
    video = None
    audio: list[AudioStream] = []
    rotation = 0
    current = None
    for line in stderr.splitlines():
        sm = _STREAM.match(line)
        if sm:
            idx, kind, rest = int(sm.group(1)), sm.group(2), sm.group(3)
            current = None
            if kind == "Video" and video is None and "attached pic" not in rest:
                video = (idx, rest)
                current = "video"
            elif kind == "Audio":
                codec = rest.split(",")[0].split()[0] if rest else "?"
                rate = re.search(r"(\d+) Hz", rest)
                parts = [p.strip() for p in rest.split(",")]
                channels = parts[2] if len(parts) > 2 else ""
                audio.append(AudioStream(idx, codec, int(rate.group(1)) if rate else None, channels))
            continue
        if current == "video":
            rm = _ROTATION.search(line)
            if rm:
                rotation = int(round(float(rm.group(1)))) % 360
    if video is None:
        if "Invalid data" in stderr or "moov atom" in stderr or "Error opening input" in stderr:
            raise ImageReadError(path, f"not a readable video ({_reason(stderr)})")
        raise ImageReadError(path, "no video stream in this file")
    idx, rest = video
    codec = rest.split(",")[0].split()[0] if rest else "?"
    pix = rest.split(",")[1].strip().split("(")[0] if "," in rest else "?"
    sm = _SIZE.search(rest + ",")
    if not sm:
        raise ImageReadError(path, "video stream without a frame size (corrupt header?)")
    width, height = int(sm.group(1)), int(sm.group(2))
    if rotation in (90, 270):
        width, height = height, width
    fps_m = re.search(r"([\d.]+k?)\s+fps", rest)
    tbr_m = re.search(r"([\d.]+k?)\s+tbr", rest)
    fps = parse_rate(fps_m.group(1)) if fps_m else None
    tbr = parse_rate(tbr_m.group(1)) if tbr_m else None
    if fps is None and tbr is None:
        raise ImageReadError(path, "video stream without a frame rate (a still image?)")
    vfr = False
    if fps is not None and tbr is not None and abs(float(fps) - float(tbr)) > 0.01 * float(tbr):
        vfr = True
    return VideoInfo(
        path=path, width=width, height=height, fps=fps or tbr, duration=duration, codec=codec,
        pix_fmt=pix, rotation=rotation, vfr=vfr, tbr=tbr, audio=audio, video_index=idx,
    )


def scan_timing(info: VideoInfo, timeout: float = 300.0) -> VideoInfo:
    """Count the video packets and look for variable frame rate, without decoding.

    Demuxes the stream (``-c copy -f framecrc``) and compares the gaps between
    presentation timestamps: gaps that differ by more than half of the smallest
    mean a variable frame rate. Cheap (no decoding) but reads the whole file.
    """
    try:
        proc = subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(info.path),
             "-map", f"0:{info.video_index}", "-c", "copy", "-f", "framecrc", "-"],
            capture_output=True, text=True, errors="replace", timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return info
    pts = []
    for line in proc.stdout.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 4:
            try:
                pts.append(int(parts[2]))
            except ValueError:
                continue
    if not pts:
        return info
    info.packets = len(pts)
    pts.sort()
    gaps = [b - a for a, b in zip(pts, pts[1:]) if b > a]
    if len(gaps) >= 2:
        lo, hi = min(gaps), max(gaps)
        if hi > 1.5 * lo and hi - lo > 1:
            info.vfr = True
    return info
