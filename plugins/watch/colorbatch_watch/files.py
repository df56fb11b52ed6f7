"""Which files the watcher takes, and when a file counts as complete.

A file is *complete* when its size and modification time have not changed for
a settle interval, or when it was moved/renamed into place (the usual way
downloaders and copy tools publish a finished file). Names that tools use for
files still being written (``.part``, ``.tmp``, ``.crdownload``, a ``~``
suffix) and hidden files or folders are never taken.
"""
from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from colorbatch.api import IMAGE_EXTENSIONS as _CORE_EXTENSIONS

#: Image extensions taken by the watcher (lower case, with the dot): the core's.
IMAGE_EXTENSIONS = frozenset(e.lower() for e in _CORE_EXTENSIONS)

#: Suffixes of files that are still being written by some tool.
PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".swp", "~")


def image_extensions() -> frozenset[str]:
    """The core's image extensions (``colorbatch.api.IMAGE_EXTENSIONS``)."""
    return IMAGE_EXTENSIONS


def is_candidate_name(name: str, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> bool:
    """True when a file called ``name`` may be taken (not hidden, partial, or foreign)."""
    if not name or name.startswith(".") or name.startswith("~$"):
        return False
    lower = name.lower()
    if lower.endswith(PARTIAL_SUFFIXES):
        return False
    return os.path.splitext(lower)[1] in extensions


class PathFilter:
    """Decides which paths under ``root`` belong to the watch.

    ``exclude`` are folders never looked into (the output folder when it lies
    inside the watched one). Hidden folders anywhere below ``root`` are skipped.
    """

    def __init__(self, root: Path, exclude: Iterable[Path] = (), extensions=None):
        self.root = Path(root).resolve()
        self.exclude = [Path(p).resolve() for p in exclude]
        self.extensions = frozenset(extensions) if extensions else image_extensions()

    def relative(self, path: Path) -> str | None:
        """The item id (POSIX path relative to root), or None when outside it."""
        try:
            rel = Path(os.path.abspath(path)).relative_to(self.root)
        except ValueError:
            return None
        return rel.as_posix()

    def excluded_dir(self, path: Path) -> bool:
        path = Path(os.path.abspath(path))
        for ex in self.exclude:
            if path == ex or ex in path.parents:
                return True
        return False

    def accepts(self, path: Path) -> bool:
        rel = self.relative(path)
        if rel is None or rel in ("", "."):
            return False
        parts = rel.split("/")
        if any(p.startswith(".") for p in parts[:-1]):
            return False
        if not is_candidate_name(parts[-1], self.extensions):
            return False
        return not self.excluded_dir(Path(path).parent)

    def scan(self, top: Path | None = None) -> Iterator[Path]:
        """Every accepted file below ``top`` (default: root), in sorted order."""
        top = Path(top) if top is not None else self.root
        stack = [top]
        while stack:
            folder = stack.pop()
            if self.excluded_dir(folder):
                continue
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError:
                continue
            subdirs = []
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        subdirs.append(Path(entry.path))
                        continue
                    if not entry.is_file():
                        continue
                except OSError:
                    continue
                p = Path(entry.path)
                if self.accepts(p):
                    yield p
            stack.extend(reversed(subdirs))


@dataclass(frozen=True)
class FileKey:
    """The identity of one version of a file: a new size or mtime is a new version."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> "FileKey | None":
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return cls(st.st_size, st.st_mtime_ns)


@dataclass
class _Pending:
    key: FileKey | None
    since: float  # monotonic time the current key was first seen
    moved: bool = False  # moved/renamed into place: complete at once
    not_before: float = 0.0  # for retries with backoff


class SettleTracker:
    """Candidate files waiting to be complete.

    ``touch(path)`` records that something happened to a file (an event or a
    rescan saw it); ``ready()`` returns the files whose size and mtime have
    been stable for ``settle`` seconds (or that were moved into place), and
    forgets them. ``mtime_shortcut`` also accepts a file whose mtime is already
    ``settle`` seconds in the past by the local clock (off for network shares,
    whose clocks may differ).
    """

    def __init__(self, settle: float, *, mtime_shortcut: bool = True, clock=time.monotonic):
        self.settle = max(0.0, float(settle))
        self.mtime_shortcut = mtime_shortcut
        self.clock = clock
        self._pending: dict[Path, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, path) -> bool:
        return Path(path) in self._pending

    def touch(self, path: Path, *, moved: bool = False, not_before: float = 0.0) -> None:
        path = Path(path)
        now = self.clock()
        key = FileKey.of(path)
        entry = self._pending.get(path)
        if entry is None:
            self._pending[path] = _Pending(key, now, moved, not_before)
            return
        if moved:
            entry.moved = True
        if not_before:
            entry.not_before = max(entry.not_before, not_before)
        if key != entry.key:
            entry.key = key
            entry.since = now

    def discard(self, path: Path) -> None:
        self._pending.pop(Path(path), None)

    def next_due(self) -> float | None:
        """Seconds until the earliest pending file could be ready (None: nothing pending)."""
        waiting = [e for e in self._pending.values() if e.key is None or e.key.size > 0]
        if not waiting:
            return None  # nothing, or only empty files: those are looked at again on the next event
        now = self.clock()
        due = min(max(e.since + self.settle, e.not_before) for e in waiting)
        return max(0.0, due - now)

    def ready(self, limit: int | None = None) -> list[tuple[Path, FileKey]]:
        """Files complete now, oldest first (at most ``limit``); they leave the tracker."""
        now = self.clock()
        wall = time.time()
        out: list[tuple[Path, FileKey]] = []
        for path, entry in sorted(self._pending.items(), key=lambda kv: (kv[1].since, str(kv[0]))):
            if limit is not None and len(out) >= limit:
                break
            if entry.not_before and now < entry.not_before:
                continue
            key = FileKey.of(path)
            if key is None:  # deleted (or no longer a plain file) before it settled
                del self._pending[path]
                continue
            if key != entry.key:  # still changing
                entry.key, entry.since = key, now
                continue
            if key.size == 0:  # being created; an empty file is never complete
                continue
            old_enough = self.mtime_shortcut and (wall - key.mtime_ns / 1e9) >= self.settle
            if entry.moved or now - entry.since >= self.settle or old_enough:
                del self._pending[path]
                out.append((path, key))
        return out

    def waiting_for_content(self) -> int:
        """How many pending files are empty (never complete until written to)."""
        entries = list(self._pending.values())  # an atomic copy: the status line reads from another thread
        return sum(1 for e in entries if e.key is not None and e.key.size == 0)

    def paths(self) -> list[Path]:
        return list(self._pending)
