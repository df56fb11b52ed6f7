"""Exceptions and exit codes.

Expected problems (bad recipe, missing file, unreadable image) are raised as
:class:`ColorbatchError` subclasses and printed as one line; anything else is a
bug and shows a traceback with ``-v``.
"""
from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes (documented in the README)."""

    OK = 0
    ITEMS_FAILED = 1  # some items or a step failed
    USAGE = 2  # usage error or invalid recipe
    INTERNAL = 3  # a bug: internal error
    INTERRUPTED = 130  # Ctrl-C / SIGTERM after a clean shutdown


class ColorbatchError(Exception):
    """An expected, user-facing error: printed as one line, no traceback."""

    exit_code = ExitCode.USAGE


class RecipeError(ColorbatchError):
    """The recipe is invalid; ``problems`` holds one message per mistake."""

    def __init__(self, problems: list[str] | str):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ExportError(ColorbatchError):
    """A model could not be exported to ONNX (an op the exporter cannot translate)."""


class StepError(ColorbatchError):
    """A whole step failed (not just one item)."""

    exit_code = ExitCode.ITEMS_FAILED


class ItemError(ColorbatchError):
    """One item failed; the batch goes on. The message names the reason."""

    exit_code = ExitCode.ITEMS_FAILED


class ImageReadError(ItemError):
    """An input image could not be read; ``path`` and ``reason`` say why."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def one_line(error: BaseException | str) -> str:
    """An error as one line for the user: its message (with the type when it is not ours)."""
    if isinstance(error, str):
        return error
    if isinstance(error, ColorbatchError):
        text = str(error)
    else:
        text = f"{type(error).__name__}: {error}"
    return " ".join(text.split()) or type(error).__name__
