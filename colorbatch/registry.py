"""Look-ups over what plugins registered (steps, sources, outputs, encoders), and the process-wide manager."""
from __future__ import annotations

import dataclasses
from typing import Any

from colorbatch.errors import ColorbatchError


def collect(pm, hook_name: str) -> list[tuple[str, Any]]:
    """Call a registration hook and flatten the lists, tagging each with its plugin."""
    caller = getattr(pm.hook, hook_name)
    out: list[tuple[str, Any]] = []
    for impl in reversed(caller.get_hookimpls()):  # registration order
        result = impl.function()
        for entry in result or []:
            out.append((impl.plugin_name, entry))
    return out


_PROCESS_PM = None


def process_manager():
    """The process-wide plugin manager once the host has built one (else None).

    The host (``colorbatch.plugins``) stores it here, so that code below the host
    (the model layer) can use it without importing the host.
    """
    return _PROCESS_PM


def set_process_manager(pm) -> None:
    global _PROCESS_PM
    _PROCESS_PM = pm


def _by_name(pm, hook: str, what: str, key: str = "name") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for plugin_name, entry in collect(pm, hook):
        name = getattr(entry, key)
        if dataclasses.is_dataclass(entry) and hasattr(entry, "plugin"):
            # a copy, so a module-level definition is not stamped for good
            entry = dataclasses.replace(entry, plugin=plugin_name)
        if name in out:
            first = getattr(out[name], "plugin", "?")
            raise ColorbatchError(
                f"{what} {name!r} is registered twice (by {first} and {plugin_name}); "
                "uninstall one of them or run with --no-plugins"
            )
        out[name] = entry
    return out


def steps(pm) -> dict[str, Any]:
    """name -> :class:`colorbatch.steps.StepDef`."""
    return _by_name(pm, "colorbatch_register_steps", "step")


def sources(pm) -> dict[str, Any]:
    """name -> :class:`colorbatch.sources.SourceDef`."""
    return _by_name(pm, "colorbatch_register_sources", "source")


def outputs(pm) -> dict[str, Any]:
    """kind -> :class:`colorbatch.outputs.OutputDef`."""
    return _by_name(pm, "colorbatch_register_outputs", "output", key="kind")


def encoders(pm) -> dict[str, Any]:
    """name -> :class:`colorbatch.models.EncoderDef`."""
    return _by_name(pm, "colorbatch_register_encoders", "encoder")
