"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

A crash leaves either the old file or the complete new one, never half a file.
The file gets the permissions ``open()`` would give (0666 minus the umask), not
the 0600 of ``mkstemp``. Plugins use these too.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

_MODE: list[int] = []


def file_mode() -> int:
    """0666 minus the process umask."""
    if not _MODE:
        mask = os.umask(0)
        os.umask(mask)
        _MODE.append(0o666 & ~mask)
    return _MODE[0]


def atomic_write(path: str | Path, writer: Callable[[str], object], *, fsync: bool = False) -> Path:
    """Call ``writer(tmp_path)`` to fill a temporary file, then move it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        writer(tmp)
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = False) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), fsync=fsync)


def atomic_write_text(path: str | Path, text: str, *, fsync: bool = False) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), fsync=fsync)
