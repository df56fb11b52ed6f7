"""colorbatch: plugin-based batch colorization of grayscale images.

Plugin authors import :data:`hookimpl` from here::

    from colorbatch import hookimpl
"""
from __future__ import annotations

import pluggy

__version__ = "0.1.0"

PROJECT = "colorbatch"
hookimpl = pluggy.HookimplMarker(PROJECT)
hookspec = pluggy.HookspecMarker(PROJECT)

__all__ = ["__version__", "hookimpl", "hookspec", "PROJECT"]
