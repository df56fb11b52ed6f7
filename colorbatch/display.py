"""Text for the terminal: names from the file system are shown, never obeyed.

A file name may hold terminal escape sequences (``\\x1b]0;title\\x07``,
``\\x1b[2J``), carriage returns, bidirectional overrides or bytes that are not
UTF-8. Printed raw, they retitle or clear the terminal, hide text or fail to
encode. :func:`printable` escapes them (``\\x1b``, ``\\u202e``; an undecodable
byte as ``\\xff``) and leaves newlines and tabs alone.
"""
from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match) -> str:
    o = ord(match.group())
    if 0xDC80 <= o <= 0xDCFF:  # a byte that is not UTF-8 (surrogateescape)
        return f"\\x{o - 0xDC00:02x}"
    if o < 0x100:
        return f"\\x{o:02x}"
    return f"\\u{o:04x}"


def printable(text) -> str:
    """``text`` with control characters, bidi overrides and lone surrogates escaped."""
    text = str(text)
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text
