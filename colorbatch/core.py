"""The built-in core plugin.

It registers the six core steps, the two core encoders, the ``files`` and
``ilsvrc`` sources, the ``image`` output and the ``colorize``, ``evaluate``,
``models`` and ``export`` commands through the same hooks a third-party plugin uses. Imports happen inside the hooks so that ``colorbatch --help``
stays fast.
"""
from __future__ import annotations

from colorbatch import hookimpl


@hookimpl
def colorbatch_register_steps():
    from colorbatch.steps import colorize, evaluate, grayscale, load, save, train

    return [load.STEP, grayscale.STEP, train.STEP, colorize.STEP, evaluate.STEP, save.STEP]


@hookimpl
def colorbatch_register_sources():
    from colorbatch import samples, sources

    return list(getattr(sources, "CORE_SOURCES", [])) + [samples.source_def()]


@hookimpl
def colorbatch_register_outputs():
    from colorbatch import outputs

    return getattr(outputs, "CORE_OUTPUTS", [])


@hookimpl
def colorbatch_register_commands(app):
    from colorbatch import core_commands, export_commands

    core_commands.register(app)
    export_commands.register(app)


@hookimpl
def colorbatch_register_encoders():
    from colorbatch.models import encoders

    return [encoders.RESNET50, encoders.EFFICIENTNET_LITE0, encoders.EFFICIENTNET_LITE2]
