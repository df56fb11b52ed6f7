"""pytest fixtures for colorbatch and its plugins.

Installed with colorbatch and registered as a pytest plugin (entry point
``pytest11``), so any test suite that has colorbatch installed can use them
without importing anything:

``colorbatch_pm``   factory: ``colorbatch_pm(*plugins)`` -> a plugin manager with the
                    core plugin and only ``plugins`` (modules or objects; no
                    installed entry points). It is also made the process-wide
                    manager for the test (the CLI uses it) and reset afterwards.
``tiny_image``      factory: ``tiny_image("a.png", size=(32, 24), mode="RGB",
                    pattern="gradient")`` writes a small generated image under
                    ``tmp_path`` and returns its path.
``tiny_images``     a folder under ``tmp_path`` with three small images
                    (colour JPEG, gray PNG, one in a sub-folder).
``write_recipe``    factory: ``write_recipe([{"uses": "load", "with": {...}}, ...])``
                    (or ``("load", {...})`` pairs) writes a TOML recipe into
                    ``tmp_path`` and returns its path.
``run_recipe``      factory: ``run_recipe(path, pm=None, overrides=())`` validates and
                    runs a recipe quietly and returns the summary dict (``ok``,
                    ``failed``, ``skipped``, ``failures``, ``exit_code`` ...).

This module imports nothing heavy at import time: pytest loads it in every
session where colorbatch is installed.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Iterable

import pytest

# --------------------------------------------------------------------------- #
# helpers (usable without pytest too)
# --------------------------------------------------------------------------- #

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_value(value: Any) -> str:
    """``value`` as a TOML literal (strings, numbers, booleans, lists, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (str, Path)):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def recipe_text(steps: Iterable, name: str = "test", **top: Any) -> str:
    """The TOML text of a recipe with ``steps`` (dicts or ``(uses, options)`` pairs)."""
    lines = ["schema_version = 1", f"name = {toml_value(name)}"]
    for key, value in top.items():
        if key == "schema_version":
            lines[0] = f"schema_version = {toml_value(value)}"
            continue
        lines.append(f"{toml_key(key)} = {toml_value(value)}")
    for step in steps:
        if isinstance(step, (tuple, list)):
            uses, options = step[0], (step[1] if len(step) > 1 else {})
            step = {"uses": uses, "with": options or {}}
        lines.append("")
        lines.append("[[steps]]")
        for key, value in step.items():
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def make_image_array(size=(32, 24), mode: str = "RGB", pattern: str = "gradient", seed: int = 0):
    """A small uint8 (or uint16 / float for I;16, I, F) numpy array for ``mode``.

    Patterns: ``gradient`` (smooth colours), ``noise``, ``faded`` (a low-contrast
    gray scan: values squeezed into the middle of the range).
    """
    import numpy as np

    w, h = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    if pattern == "noise":
        base = rng.random((h, w, 3), dtype=np.float32)
    elif pattern == "faded":
        g = 0.4 + 0.2 * (x / max(w - 1, 1)) * (0.5 + 0.5 * y / max(h - 1, 1))
        g = g + rng.normal(0, 0.01, g.shape).astype(np.float32)
        base = np.repeat(g[..., None], 3, axis=2)
    elif pattern == "gradient":
        base = np.stack(
            [x / max(w - 1, 1), y / max(h - 1, 1), 1.0 - 0.5 * (x / max(w - 1, 1) + y / max(h - 1, 1))],
            axis=2,
        )
    else:
        raise ValueError(f"unknown pattern {pattern!r}; use gradient, noise or faded")
    base = np.clip(base, 0.0, 1.0)
    gray = base @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if mode in ("RGB", "CMYK"):
        return (base * 255).round().astype(np.uint8)
    if mode == "RGBA":
        alpha = (x / max(w - 1, 1) * 255).round().astype(np.uint8)[..., None]
        return np.concatenate([(base * 255).round().astype(np.uint8), alpha], axis=2)
    if mode in ("L", "1", "P"):
        return (gray * 255).round().astype(np.uint8)
    if mode == "LA":
        alpha = (x / max(w - 1, 1) * 255).round().astype(np.uint8)
        return np.stack([(gray * 255).round().astype(np.uint8), alpha], axis=2)
    if mode.startswith("I;16"):
        return (gray * 65535).round().astype(np.uint16)
    if mode == "I":
        return (gray * 65535).round().astype(np.int32)
    if mode == "F":
        return gray.astype(np.float32)
    raise ValueError(f"unsupported mode {mode!r}")


def save_tiny_image(path, size=(32, 24), mode: str = "RGB", pattern: str = "gradient", seed: int = 0, **save_kwargs) -> Path:
    """Write a generated image of ``mode`` to ``path`` (format from the suffix)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = make_image_array(size, mode, pattern, seed)
    if mode == "1":
        im = Image.fromarray(arr).convert("1")
    elif mode == "P":
        im = Image.fromarray(arr).convert("P")
    elif mode == "CMYK":
        im = Image.fromarray(arr, "RGB").convert("CMYK")
    elif mode.startswith("I;16"):
        im = Image.fromarray(arr)
    else:
        im = Image.fromarray(arr)
    im.save(path, **save_kwargs)
    return path


# --------------------------------------------------------------------------- #
# fixtures
# --------------------------------------------------------------------------- #


@pytest.fixture
def colorbatch_pm():
    """Factory for plugin managers holding the core plugin plus only the given plugins."""
    from colorbatch import plugins, registry

    previous = registry.process_manager()

    def make(*extra):
        pm = plugins.make_plugin_manager(no_plugins=True, extra=list(extra))
        plugins.set_plugin_manager(pm)
        return pm

    yield make
    plugins.set_plugin_manager(previous)


@pytest.fixture
def tiny_image(tmp_path):
    """Factory: ``tiny_image(name, size=(32, 24), mode="RGB", pattern="gradient")`` -> Path."""

    def make(name="image.png", size=(32, 24), mode="RGB", pattern="gradient", seed=0, **save_kwargs):
        path = Path(name)
        if not path.is_absolute():
            path = tmp_path / path
        return save_tiny_image(path, size=size, mode=mode, pattern=pattern, seed=seed, **save_kwargs)

    return make


@pytest.fixture
def tiny_images(tmp_path):
    """A folder of three small images: a.jpg (colour), b.png (gray), sub/c.png (faded gray)."""
    folder = tmp_path / "images"
    save_tiny_image(folder / "a.jpg", mode="RGB", quality=95)
    save_tiny_image(folder / "b.png", mode="L", seed=1)
    save_tiny_image(folder / "sub" / "c.png", mode="L", pattern="faded", seed=2)
    return folder


@pytest.fixture
def write_recipe(tmp_path):
    """Factory: ``write_recipe(steps, name="test", filename="recipe.toml", **top_level)`` -> Path."""

    def write(steps, name="test", filename="recipe.toml", **top):
        path = tmp_path / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        top.setdefault("run_dir", str(tmp_path / "runs" / name))
        path.write_text(recipe_text(steps, name=name, **top), encoding="utf-8")
        return path

    return write


@pytest.fixture
def run_recipe(colorbatch_pm):
    """Factory: ``run_recipe(path, pm=None, overrides=())`` -> summary dict (quiet)."""
    import io

    def run(path, pm=None, overrides=(), **kw):
        from rich.console import Console

        from colorbatch import registry
        from colorbatch.recipe import load_plan
        from colorbatch.runner import run_plan

        pm = pm or colorbatch_pm()
        plan = load_plan(Path(path), registry.steps(pm), list(overrides))
        console = Console(file=io.StringIO(), width=200)
        summary = run_plan(plan, pm, console=console, show_progress=False, **kw)
        summary["console"] = console.file.getvalue()
        return summary

    return run
