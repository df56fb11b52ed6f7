"""Hook implementations of the studio plugin (entry point ``studio`` in group ``colorbatch``).

Registers the ``colorbatch studio`` command; nothing heavy is imported here.
"""
from __future__ import annotations

from colorbatch.api import hookimpl


@hookimpl
def colorbatch_register_commands(app):
    from colorbatch_studio.command import register

    register(app)
