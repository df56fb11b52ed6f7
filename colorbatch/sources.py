"""Sources: what the ``load`` step reads items from.

A :class:`SourceDef` turns a ``source`` option (a path, folder, glob or list
file) into a lazy, indexable list of :class:`colorbatch.item.Item` (paths only;
pixels are decoded later, in DataLoader workers where it matters).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class SourceDef:
    """A named way to enumerate items.

    name:        the ``layout`` value of the load step (``files``, ``ilsvrc``, ``video``).
    enumerate:   ``enumerate(source, options, ctx) -> list[Item]``; raise
                 :class:`colorbatch.errors.ColorbatchError` for a bad source.
    extensions:  file extensions (lower case, with dot) this source claims when
                 the ``files`` layout meets a single file or a folder entry of
                 that type, e.g. the video plugin claims ``.mp4``. The claimed
                 file is passed to ``enumerate`` as the source.
    """

    name: str
    enumerate: Callable[..., Any]
    extensions: tuple[str, ...] = ()
    help: str = ""
    plugin: str = field(default="", compare=False)
