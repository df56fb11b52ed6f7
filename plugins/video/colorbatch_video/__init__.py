"""colorbatch-video: colorize video files frame by frame, keeping the sound.

A colorbatch plugin (entry point group ``colorbatch``) that adds:

* the ``video`` source (``layout = "video"``), which also claims video files
  (.mp4 .mkv .mov .avi .webm ...) met by the ``files`` layout, so
  ``colorbatch colorize film.mp4 --out film_color.mp4`` reaches it;
* the ``video-frame`` output used by ``save``: temporal smoothing of a*b*,
  chunked resumable encoding, the original's audio copied untouched;
* the steps ``video_options``, ``temporal_smooth``, ``video_export`` and
  ``video_assemble``.

Heavy imports (imageio, numpy work) happen inside the hooks.
"""
from __future__ import annotations

from colorbatch.api import hookimpl

__version__ = "0.1.0"


@hookimpl
def colorbatch_register_sources():
    from colorbatch.api import SourceDef

    from colorbatch_video.probe import VIDEO_EXTENSIONS
    from colorbatch_video.source import enumerate_source

    return [
        SourceDef(
            name="video",
            enumerate=enumerate_source,
            extensions=VIDEO_EXTENSIONS,
            help="Frames of video files (a file or a folder of them), decoded lazily with ffmpeg.",
        )
    ]


@hookimpl
def colorbatch_register_outputs():
    from colorbatch.api import OutputDef

    from colorbatch_video.output import factory

    return [
        OutputDef(
            kind="video-frame",
            factory=factory,
            help="Colorized frames back into a video: same frames, rate, size and duration; audio copied.",
        )
    ]


@hookimpl
def colorbatch_register_steps():
    from colorbatch_video.steps import STEPS

    return list(STEPS)
