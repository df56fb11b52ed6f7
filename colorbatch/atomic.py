"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

A crash leaves either the old file or the complete new one, never half a file.
The file gets the permissions ``open()`` would give (0666 minus the umask), not
the 0600 of ``mkstemp``. Plugins use these too.

Temporary files are hidden (``.<name>.cb-<host>-<pid>-XXXXXXXX.tmp``), so no
folder walk takes them as inputs. When the target's name is too long for the
file system to take that prefix (a 250-byte name on ext4), a short hashed
prefix is used instead. A process killed with ``kill -9`` cannot remove its
temporary file: :func:`clean_stale_temps` removes those whose writer, on this
host, no longer runs (``save`` calls it once per output folder).
"""
from __future__ import annotations

import hashlib
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Callable

_MODE: list[int] = []
_RANDOM = 8  # characters mkstemp adds
_SUFFIX = ".tmp"
_TEMP_RE = re.compile(r"^\..*\.cb-([0-9a-f]{6})-(\d+)-[a-z0-9_]{%d}\.tmp$" % _RANDOM)


def file_mode() -> int:
    """0666 minus the process umask."""
    if not _MODE:
        mask = os.umask(0)
        os.umask(mask)
        _MODE.append(0o666 & ~mask)
    return _MODE[0]


def _host() -> str:
    return hashlib.sha1(socket.gethostname().encode("utf-8", "surrogateescape")).hexdigest()[:6]


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def temp_prefix(path: Path) -> str:
    """The hidden prefix of ``path``'s temporary files, short enough for the file system."""
    tag = f".cb-{_host()}-{os.getpid()}-"
    prefix = f".{path.name}{tag}"
    if len(os.fsencode(prefix)) + _RANDOM + len(_SUFFIX) > _name_max(path.parent):
        digest = hashlib.sha1(os.fsencode(path.name)).hexdigest()[:16]
        prefix = f".colorbatch-{digest}{tag}"
    return prefix


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it runs, as another user
        return True
    return True


def clean_stale_temps(folder: str | Path) -> int:
    """Remove temporary files in ``folder`` left by writers (on this host) that no longer run.

    Only names made by :func:`atomic_write` are considered; files of live
    processes and of other hosts (a shared file system) are left alone.
    Returns the number removed.
    """
    removed = 0
    host = _host()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if m is None or m.group(1) != host:
            continue
        pid = int(m.group(2))
        if pid == os.getpid() or _running(pid):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed += 1
        except OSError:
            pass
    return removed


def atomic_write(path: str | Path, writer: Callable[[str], object], *, fsync: bool = False) -> Path:
    """Call ``writer(tmp_path)`` to fill a temporary file, then move it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=_SUFFIX, dir=str(path.parent))
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
