"""Outputs: how the ``save`` step writes an item, chosen by ``item.kind``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class OutputDef:
    """A writer for items of one kind.

    kind:     matches ``Item.kind`` (``image``; the video plugin adds ``video-frame``).
    factory:  ``factory(save_options, ctx) -> Output``; an ``Output`` has
              ``write(item) -> Path``, ``is_done(item) -> bool`` and ``close()``.
    """

    kind: str
    factory: Callable[..., Any]
    help: str = ""
    plugin: str = field(default="", compare=False)
