"""The plugin contract: every hook colorbatch calls.

A plugin is a module or object with functions marked ``@colorbatch.hookimpl``
whose names match the specs below. The built-in core plugin
(:mod:`colorbatch.core`) registers the six core steps (load, grayscale, train,
colorize, evaluate, save) through ``colorbatch_register_steps``, exactly as a
third party registers its own; the runner knows no step by name. Hook implementations must keep imports of heavy
libraries (torch, torchvision, imageio) inside the function bodies that need
them, so that ``colorbatch --help`` stays fast.

Registration hooks return lists and are collected from every plugin; the
lifecycle hooks are broadcast to every observer and their results ignored.
"""
from __future__ import annotations

from colorbatch import hookspec

# --------------------------------------------------------------------------- #
# Registration
# --------------------------------------------------------------------------- #


@hookspec
def colorbatch_register_steps():
    """Return a list of :class:`colorbatch.steps.StepDef` this plugin adds.

    A ``StepDef`` names the step (the ``uses`` value in a recipe), its options
    schema (a pydantic model with ``extra="forbid"``), a one-line help text and
    a factory building the :class:`colorbatch.steps.Step`. A step name may be
    registered once; a second registration is an error naming both plugins.
    """


@hookspec
def colorbatch_register_encoders():
    """Return a list of :class:`colorbatch.models.EncoderDef` this plugin adds.

    An encoder turns a 1-channel L* image into a pyramid of feature maps for the
    decoder. The core plugin registers ``resnet50`` and ``efficientnet-lite0``.
    """


@hookspec
def colorbatch_register_sources():
    """Return a list of :class:`colorbatch.sources.SourceDef` this plugin adds.

    A source turns the ``source`` option of the ``load`` step into a lazy,
    indexable list of items. ``layout`` selects it by name (``files``,
    ``ilsvrc``; plugins add e.g. ``video``). Each ``SourceDef`` may also claim
    single files by extension (the video plugin claims ``.mp4`` ...), so that
    ``colorbatch colorize film.mp4`` reaches it.
    """


@hookspec
def colorbatch_register_outputs():
    """Return a list of :class:`colorbatch.outputs.OutputDef` this plugin adds.

    An output writes finished items; the ``save`` step picks the output whose
    ``kind`` equals ``item.kind`` (``image`` is the core one; the video plugin
    adds ``video-frame``, which streams frames into a video file).
    """


@hookspec
def colorbatch_register_commands(app):
    """Add CLI commands to ``app`` (a fresh ``typer.Typer`` for this plugin).

    Commands whose names clash with a core command are dropped with a warning:
    core names win.
    """


# --------------------------------------------------------------------------- #
# Lifecycle hooks for observers (reports, loggers). Broadcast; results ignored.
# --------------------------------------------------------------------------- #


@hookspec
def colorbatch_run_started(run):
    """A run begins. ``run`` is the :class:`colorbatch.runner.RunContext`."""


@hookspec
def colorbatch_step_finished(run, step, stats):
    """Step ``step`` (its :class:`colorbatch.recipe.StepConfig`) finished.

    ``stats`` is a dict with ``ok``, ``failed``, ``skipped`` and ``seconds``.
    """


@hookspec
def colorbatch_item_failed(run, step, item, error):
    """Item ``item`` failed in ``step`` with ``error`` (one-line message)."""


@hookspec
def colorbatch_event(run, name, data):
    """A named event with a JSON-able ``data`` dict.

    Used for training epochs (``name="epoch"``), evaluation results
    (``"metrics"``), written outputs (``"saved"``) and watch sessions.
    """


@hookspec
def colorbatch_run_finished(run, summary):
    """A run ended. ``summary`` is the dict written to ``run.json``."""
