"""Recipes: TOML -> a validated plan of steps.

A recipe::

    schema_version = 1
    name = "quickstart"
    run_dir = "runs/quickstart"        # optional; default ./runs/<name>

    [[steps]]
    uses = "load"                      # the step to run (see `colorbatch steps`)
    id = "train_photos"                # optional; defaults to `uses`
    with = { source = "photos/", size = 224 }

Validation reports every mistake at once, each naming the step and field.
Relative paths in path options resolve against the recipe file's folder; a value
starting with ``{run_dir}`` resolves inside the run folder.

Overrides (``--set KEY=VALUE``, repeatable): ``steps.<id>.<option>=VALUE`` where
``<id>`` is a step's id, its ``uses`` name when unique, or its 1-based position
(``steps.2.epochs=1``); top-level keys: ``name=...``, ``run_dir=...``. VALUE is
parsed as a TOML value (``1``, ``0.5``, ``true``, ``"text"``, ``[1, 2]``) and
taken as a plain string when it is not one. An override of an option the step
does not have is an error, like a misspelt key in the file.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colorbatch.errors import RecipeError
from colorbatch.messages import did_you_mean  # noqa: F401 - re-exported (older imports)
from colorbatch.messages import format_pydantic as _format_pydantic

SCHEMA_VERSION = 1
TOP_LEVEL_KEYS = {"schema_version", "name", "description", "run_dir", "steps"}
STEP_KEYS = {"uses", "id", "with"}


@dataclass
class StepConfig:
    """One validated step of a plan."""

    index: int  # 1-based position in the recipe
    id: str
    uses: str
    options: Any  # the validated pydantic model instance
    stepdef: Any

    def describe(self) -> str:
        return f"steps[{self.index}] ({self.id})"


@dataclass
class Plan:
    """A validated recipe, ready to run."""

    name: str
    source: str  # where it came from (file path or "<command line>")
    base_dir: Path
    run_dir: Path | None
    steps: list[StepConfig] = field(default_factory=list)
    description: str = ""
    raw: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "source": self.source,
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "steps": [
                {
                    "id": s.id,
                    "uses": s.uses,
                    "with": s.options.model_dump(mode="json") if s.options is not None else {},
                }
                for s in self.steps
            ],
        }


# --------------------------------------------------------------------------- #
# Loading and overrides
# --------------------------------------------------------------------------- #


def read_toml(path: Path) -> dict:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise RecipeError(f"{path}: recipe file not found; check the path") from None
    except IsADirectoryError:
        raise RecipeError(f"{path}: is a folder; give the path of a .toml recipe") from None
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read recipe ({exc.strerror})") from None
    try:
        return tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise RecipeError(f"{path}: not UTF-8 text; save the recipe as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: invalid TOML: {exc}") from None


def parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict, overrides: list[str], label: str) -> list[str]:
    """Apply ``KEY=VALUE`` overrides to ``raw`` in place; return the problems."""
    problems: list[str] = []
    steps = raw.get("steps") if isinstance(raw.get("steps"), list) else []
    for text in overrides:
        if "=" not in text:
            problems.append(f"--set {text!r}: expected KEY=VALUE, e.g. steps.train.epochs=1")
            continue
        key, value = text.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        val = parse_value(value.strip())
        if parts[0] != "steps":
            if len(parts) != 1 or parts[0] not in TOP_LEVEL_KEYS - {"steps"}:
                allowed = sorted(TOP_LEVEL_KEYS - {"steps"}) + ["steps.<id>.<option>"]
                problems.append(
                    f"--set {key}: unknown key{did_you_mean(parts[0], allowed)} "
                    f"(known: {', '.join(allowed)})"
                )
                continue
            raw[parts[0]] = val
            continue
        if len(parts) != 3:
            problems.append(f"--set {key}: expected steps.<id>.<option>=VALUE")
            continue
        selector, option = parts[1], parts[2]
        target = _select_step(steps, selector)
        if isinstance(target, str):
            problems.append(f"--set {key}: {target}")
            continue
        target.setdefault("with", {})
        if not isinstance(target["with"], dict):
            problems.append(f"--set {key}: that step's 'with' is not a table")
            continue
        target["with"][option] = val
        target.setdefault("_overridden", []).append(option)
    return problems


def _step_id(step: dict, index: int, steps: list) -> str:
    if isinstance(step.get("id"), str):
        return step["id"]
    uses = step.get("uses")
    same = [s for s in steps if isinstance(s, dict) and s.get("uses") == uses and "id" not in s]
    return str(uses) if len(same) == 1 else f"{uses}{index}"


def _select_step(steps: list, selector: str):
    ids = [_step_id(s, i + 1, steps) for i, s in enumerate(steps) if isinstance(s, dict)]
    if selector.isdigit():
        n = int(selector)
        if 1 <= n <= len(steps) and isinstance(steps[n - 1], dict):
            return steps[n - 1]
        return f"no step number {n} (the recipe has {len(steps)})"
    for i, s in enumerate(steps):
        if isinstance(s, dict) and _step_id(s, i + 1, steps) == selector:
            return s
    by_uses = [s for s in steps if isinstance(s, dict) and s.get("uses") == selector]
    if len(by_uses) == 1:
        return by_uses[0]
    if len(by_uses) > 1:
        return f"{len(by_uses)} steps use {selector!r}; select one by id: {', '.join(ids)}"
    return f"no step {selector!r}{did_you_mean(selector, ids)} (steps: {', '.join(ids)})"


# --------------------------------------------------------------------------- #
# Validation
# --------------------------------------------------------------------------- #


class OutsideRunDir(ValueError):
    """A ``{run_dir}`` path that climbs out of the run folder."""


def resolve_path(value: Any, base_dir: Path, run_dir: Path | None) -> Any:
    if value is None or not isinstance(value, (str, Path)):
        return value
    text = str(value)
    if text.startswith("{run_dir}"):
        rest = text[len("{run_dir}") :].lstrip("/\\")
        root = run_dir if run_dir is not None else Path.cwd()
        if rest and os.path.normpath(rest).replace("\\", "/").split("/")[0] == "..":
            raise OutsideRunDir(
                f"{text} leaves the run folder ({{run_dir}} paths stay inside it); "
                "remove the '..', or give a path without {run_dir}"
            )
        return str(root / rest) if rest else str(root)
    if re.match(r"^[a-z][a-z0-9+.-]*://", text):  # URLs stay as they are
        return text
    p = Path(text).expanduser()
    return str(p if p.is_absolute() else (base_dir / p))


def build_plan(
    raw: dict,
    registry: dict,
    *,
    label: str,
    base_dir: Path,
    overrides: list[str] | None = None,
    run_dir: str | Path | None = None,
) -> Plan:
    """Validate ``raw`` (a parsed recipe) against the step ``registry``.

    Every problem is collected; a :class:`RecipeError` lists them all.
    """
    problems = apply_overrides(raw, overrides or [], label)

    version = raw.get("schema_version")
    if version is None:
        problems.append(f"{label}: missing schema_version; add `schema_version = {SCHEMA_VERSION}`")
    elif not isinstance(version, int) or isinstance(version, bool):
        problems.append(f"{label}: schema_version must be an integer (got {version!r})")
    elif version > SCHEMA_VERSION:
        raise RecipeError(
            f"{label}: schema_version {version} is newer than this colorbatch understands "
            f"({SCHEMA_VERSION}); upgrade colorbatch (pip install -U colorbatch)"
        )
    elif version < 1:
        problems.append(f"{label}: schema_version must be >= 1 (got {version})")

    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            problems.append(f"{label}: unknown top-level key {key!r}{did_you_mean(key, TOP_LEVEL_KEYS)}")

    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{label}: missing name; add e.g. name = \"my-recipe\"")
        name = "recipe"

    run_dir_value = run_dir if run_dir is not None else raw.get("run_dir")
    if run_dir_value is None:
        resolved_run_dir = Path.cwd() / "runs" / re.sub(r"[^\w.-]+", "-", name)
    elif isinstance(run_dir_value, (str, Path)):
        p = Path(str(run_dir_value)).expanduser()
        # a run_dir from the command line is relative to the current folder
        resolved_run_dir = p if p.is_absolute() else ((Path.cwd() if run_dir is not None else base_dir) / p)
    else:
        problems.append(f"{label}: run_dir must be a path string")
        resolved_run_dir = None

    steps_raw = raw.get("steps")
    plan = Plan(
        name=name,
        source=label,
        base_dir=base_dir,
        run_dir=resolved_run_dir,
        description=str(raw.get("description", "")),
        raw=raw,
    )
    if not isinstance(steps_raw, list) or not steps_raw:
        problems.append(f"{label}: no steps; add at least one [[steps]] table with uses = \"...\"")
        raise RecipeError(problems)

    seen_ids: set[str] = set()
    for i, step in enumerate(steps_raw, start=1):
        if not isinstance(step, dict):
            problems.append(f"{label}: steps[{i}]: must be a table with uses = \"...\"")
            continue
        uses = step.get("uses")
        sid = _step_id(step, i, steps_raw)
        where = f"{label}: steps[{i}] ({sid})"
        for key in step:
            if key not in STEP_KEYS and key != "_overridden":
                problems.append(f"{where}: unknown key {key!r}{did_you_mean(key, STEP_KEYS)}")
        if sid in seen_ids:
            problems.append(f"{where}: duplicate step id {sid!r}; give each step a unique id")
        seen_ids.add(sid)
        if not isinstance(uses, str):
            problems.append(f"{where}: missing uses = \"<step>\" (available: {', '.join(sorted(registry))})")
            continue
        stepdef = registry.get(uses)
        if stepdef is None:
            problems.append(
                f"{where}: unknown step {uses!r}{did_you_mean(uses, registry)} "
                f"(available: {', '.join(sorted(registry))})"
            )
            continue
        options = step.get("with", {})
        if not isinstance(options, dict):
            problems.append(f"{where}.with: must be a table of options")
            continue
        options = dict(options)
        outside = False
        for key in stepdef.path_options:
            if key in options:
                try:
                    options[key] = _resolve_nested(options[key], base_dir, resolved_run_dir)
                except OutsideRunDir as exc:
                    problems.append(f"{where}.{key}: {exc}")
                    outside = True
        if outside:
            continue
        model = stepdef.options()
        try:
            from pydantic import ValidationError
        except ImportError:  # pragma: no cover
            raise
        try:
            validated = model.model_validate(options)
        except ValidationError as exc:
            problems.extend(_format_pydantic(exc, where, model))
            continue
        # defaults that are paths resolve too (e.g. "{run_dir}/outputs")
        for key in stepdef.path_options:
            if key not in options:
                current = getattr(validated, key, None)
                if current is not None:
                    try:
                        setattr(validated, key, _resolve_nested(current, base_dir, resolved_run_dir))
                    except OutsideRunDir as exc:
                        problems.append(f"{where}.{key}: {exc}")
        plan.steps.append(StepConfig(i, sid, uses, validated, stepdef))
    if problems:
        raise RecipeError(problems)
    return plan


def _resolve_nested(value, base_dir, run_dir):
    if isinstance(value, list):
        return [resolve_path(v, base_dir, run_dir) for v in value]
    return resolve_path(value, base_dir, run_dir)


def load_plan(
    path: str | Path,
    registry: dict,
    overrides: list[str] | None = None,
    run_dir: str | Path | None = None,
) -> Plan:
    path = Path(path)
    raw = read_toml(path)
    return build_plan(
        raw,
        registry,
        label=path.name,
        base_dir=path.resolve().parent,
        overrides=overrides,
        run_dir=run_dir,
    )
