"""The unit of work that flows through a recipe's steps."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


FLUSH_KIND = "flush"


@dataclass
class Item:
    """One image (or video frame) on its way through the steps.

    Pixel fields are numpy arrays and are filled lazily by the steps:

    ``rgb``     H x W x 3 float32 sRGB in [0, 1]: the decoded input when it is in
                colour (the ground truth for evaluation); None for gray inputs.
    ``L``       H x W float32 L* (0..100) at full resolution.
    ``ab``      H x W x 2 float32 predicted a*b* at full resolution.
    ``output``  H x W x 3 uint8 (or H x W) array that ``save`` writes.
    ``encoded`` an :class:`Encoded` form of ``output`` made where it was computed (a
                JPEG from the GPU), which ``save`` writes instead of encoding again
                when it is what it would write (see :mod:`colorbatch.image_write`).

    ``id`` is the item's path relative to its source root, in POSIX form; ``save``
    mirrors it under the output folder. ``kind`` selects the output writer.
    """

    id: str
    path: Path | None = None
    root: Path | None = None
    kind: str = "image"
    rgb: Any = None
    L: Any = None
    ab: Any = None
    output: Any = None
    meta: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    encoded: Any = None

    @property
    def is_marker(self) -> bool:
        """True for a FLUSH marker (see :func:`flush_marker`), not a real item."""
        return self.kind == FLUSH_KIND

    @property
    def label(self) -> str:
        """How the item is named in messages: its path when it has one."""
        return str(self.path) if self.path is not None else self.id

    def drop_pixels(self) -> None:
        """Release the pixel arrays (after saving) so memory stays flat."""
        self.rgb = self.L = self.ab = self.output = self.encoded = None


@dataclass
class Encoded:
    """``data``: a file's bytes in ``format`` (``"JPEG"``) at ``quality``, encoded from the
    array ``pixels`` (the item's ``output`` at the time: a step that replaces the output
    makes it stale, and save then encodes the new one itself)."""

    format: str
    quality: int
    data: bytes
    pixels: Any = None


def flush_marker() -> Item:
    """A marker a slow, unbounded source (a watched folder) yields when it has
    nothing more for now: batching steps process what they hold and pass the
    marker on; item steps pass it on untouched; the runner does not count it."""
    return Item(id="", kind=FLUSH_KIND)
