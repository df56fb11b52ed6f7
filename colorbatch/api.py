"""The public API for plugin authors: everything a plugin may import from colorbatch.

Plugins, ours included, import from this module only (a test walks the AST of
``plugins/`` to keep it so); anything else in the package may change without
notice. Importing it is cheap: the names that need numpy, pydantic or the runner
are loaded on first use.

Hooks and registration
    ``hookimpl``, ``__version__``, ``StepDef``, ``Step``, ``ItemStep``,
    ``SourceDef``, ``OutputDef``, ``Item``, ``flush_marker``, ``steps_of(pm)``
Errors and exit codes
    ``ColorbatchError``, ``RecipeError``, ``StepError``, ``ItemError``,
    ``ImageReadError``, ``ExitCode``, ``one_line``
Images and files
    ``IMAGE_EXTENSIONS``, ``read_image``, ``decode_item``, ``write_image``,
    ``L_to_gray``, ``rgb_to_L_np``, ``gray_to_L_np``, ``lab_to_rgb_numpy``,
    ``lab_to_rgb_keep_L_numpy`` (numpy only, no torch), ``XYZ_FROM_RGB``,
    ``WHITE_D65``, ``atomic_write``, ``atomic_write_bytes``,
    ``atomic_write_text``, ``same_file``, ``pipeline_signature``
Runs and summaries
    ``build_plan``, ``RunContext``, ``RunState`` (``ctx.state``: named fields;
    a plugin's own values kept by type with ``put``/``find``; ``facts`` for the
    run summary), ``execute``, ``run_plan``, ``RunSummary``,
    ``versions``
Colorizing and colour hints (torch is imported on use)
    ``Colorizer`` (``predict_small``/``predict_ab`` with per-image hints,
    ``encode``/``decode`` to re-colorize one image with new hints at the cost of
    the decoder alone, ``recombine``, ``net_hw``, ``accepts_hints``),
    ``net_shape``, ``resize_L01``, ``discover_model``; hint files: ``HintFile``,
    ``load_hints``, ``find_hints``, ``points_in_pixels``, ``hint_digest``,
    ``HINTS_SUFFIX``; network hints: ``hints_for_image``, ``reference_hint``,
    ``reference_colourfulness``; the pipeline's own pieces: ``decode_L`` (the
    one decode to quantised L*), ``quantize_L`` and ``L_SCALE`` (L* as uint16),
    ``prepare_item``, ``output_suffix``,
    ``configure_threads``, ``warm_kernels`` / ``wait_kernels`` (load the fused pixel
    kernels in the background, then wait for them: a process that colorizes outside the
    colorize step takes the step's exact pixel path only once they are loaded)
Commands (``colorbatch_register_commands``)
    ``handle_errors`` (one line and the documented exit code for expected
    errors, exit 3 for bugs), ``plugin_manager()``, ``report_load_errors``,
    ``verbose()``, ``stderr_console()``, ``finish_run(summary, json_mode)``,
    ``run_builtin_recipe(name, steps, run_dir=, dry_run=, json_out=)`` (what
    ``colorbatch colorize`` does: a recipe built in code, run, summarised, exit code)
"""
from __future__ import annotations

import importlib

from colorbatch import __version__, hookimpl
from colorbatch.errors import (
    ColorbatchError,
    ExitCode,
    ImageReadError,
    ItemError,
    RecipeError,
    StepError,
    one_line,
)
from colorbatch.item import Item, flush_marker

# name -> (module, attribute): loaded on first use, so that importing the API stays cheap
_LAZY = {
    "StepDef": ("colorbatch.steps", "StepDef"),
    "Step": ("colorbatch.steps", "Step"),
    "ItemStep": ("colorbatch.steps", "ItemStep"),
    "SourceDef": ("colorbatch.sources", "SourceDef"),
    "OutputDef": ("colorbatch.outputs", "OutputDef"),
    "pipeline_signature": ("colorbatch.outputs", "pipeline_signature"),
    "same_file": ("colorbatch.outputs", "same_file"),
    "IMAGE_EXTENSIONS": ("colorbatch.images", "IMAGE_EXTENSIONS"),
    "read_image": ("colorbatch.images", "read_image"),
    "decode_item": ("colorbatch.images", "decode_item"),
    "write_image": ("colorbatch.images", "write_image"),
    "L_to_gray": ("colorbatch.images", "L_to_gray"),
    "rgb_to_L_np": ("colorbatch.color", "rgb_to_L_np"),
    "gray_to_L_np": ("colorbatch.color", "gray_to_L_np"),
    "lab_to_rgb_numpy": ("colorbatch.color_numpy", "lab_to_rgb_numpy"),
    "lab_to_rgb_keep_L_numpy": ("colorbatch.color_numpy", "lab_to_rgb_keep_L_numpy"),
    "XYZ_FROM_RGB": ("colorbatch.color", "XYZ_FROM_RGB"),
    "WHITE_D65": ("colorbatch.color", "WHITE_D65"),
    "atomic_write": ("colorbatch.atomic", "atomic_write"),
    "atomic_write_bytes": ("colorbatch.atomic", "atomic_write_bytes"),
    "atomic_write_text": ("colorbatch.atomic", "atomic_write_text"),
    "build_plan": ("colorbatch.recipe", "build_plan"),
    "RunContext": ("colorbatch.runcontext", "RunContext"),
    "RunState": ("colorbatch.runstate", "RunState"),
    "execute": ("colorbatch.runner", "execute"),
    "run_plan": ("colorbatch.runner", "run_plan"),
    "RunSummary": ("colorbatch.summary", "RunSummary"),
    "versions": ("colorbatch.summary", "versions"),
    "handle_errors": ("colorbatch.commands", "handle_errors"),
    "report_load_errors": ("colorbatch.commands", "report_load_errors"),
    "verbose": ("colorbatch.commands", "verbose"),
    "stderr_console": ("colorbatch.commands", "stderr_console"),
    "finish_run": ("colorbatch.commands", "finish_run"),
    "run_builtin_recipe": ("colorbatch.commands", "run_builtin_recipe"),
    "Colorizer": ("colorbatch.colorizer", "Colorizer"),
    "net_shape": ("colorbatch.colorizer", "net_shape"),
    "resize_L01": ("colorbatch.colorizer", "resize_L01"),
    "discover_model": ("colorbatch.models.checkpoint", "discover_model"),
    "HintFile": ("colorbatch.hints", "HintFile"),
    "load_hints": ("colorbatch.hints", "load"),
    "find_hints": ("colorbatch.hints", "find"),
    "points_in_pixels": ("colorbatch.hints", "points_in_pixels"),
    "hint_digest": ("colorbatch.hints", "digest"),
    "HINTS_SUFFIX": ("colorbatch.hints", "SUFFIX"),
    "hints_for_image": ("colorbatch.models.hints", "for_image"),
    "reference_hint": ("colorbatch.models.hints", "reference_hint"),
    "reference_colourfulness": ("colorbatch.models.hints", "reference_colourfulness"),
    "configure_threads": ("colorbatch.device", "configure_threads"),
    "warm_kernels": ("colorbatch.kernels", "warm_for_pipeline"),
    "wait_kernels": ("colorbatch.kernels", "wait_warm"),
    "decode_L": ("colorbatch.images", "decode_L"),
    "quantize_L": ("colorbatch.images", "quantize_L"),
    "L_SCALE": ("colorbatch.images", "L_SCALE"),
    "prepare_item": ("colorbatch.prepare", "prepare_item"),
    "output_suffix": ("colorbatch.outputs", "output_suffix"),
}


def plugin_manager(no_plugins: bool = False):
    """The process-wide plugin manager (built on first use); ``no_plugins`` builds a core-only one if none exists yet."""
    from colorbatch.plugins import get_plugin_manager, use_core_only

    if no_plugins:
        use_core_only()
    return get_plugin_manager()


def steps_of(pm) -> dict:
    """The steps the plugins of ``pm`` register, by name (``{"load": StepDef, ...}``)."""
    from colorbatch import registry

    return registry.steps(pm)


def __getattr__(name: str):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'colorbatch.api' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__", "hookimpl", "ColorbatchError", "ExitCode", "ImageReadError", "ItemError",
    "RecipeError", "StepError", "one_line", "Item", "flush_marker", "steps_of", "plugin_manager", *_LAZY,
]
