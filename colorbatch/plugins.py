"""The plugin manager: the core plugin, entry-point plugins and their load errors.

Third-party plugins are distributions that declare an entry point in the
``colorbatch`` group::

    [project.entry-points.colorbatch]
    autocontrast = "colorbatch_autocontrast"

They are imported one at a time. One that fails to import is reported (with its
distribution's name and version) and skipped, unless
``COLORBATCH_STRICT_PLUGINS=1``. ``--no-plugins`` or ``COLORBATCH_NO_PLUGINS=1``
loads only the built-in plugin.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from colorbatch import PROJECT, hookspecs
from colorbatch.errors import ColorbatchError
from colorbatch import registry
from colorbatch.registry import collect  # noqa: F401 - re-exported (older imports)

ENTRY_POINT_GROUP = "colorbatch"
CORE_PLUGIN_NAME = "colorbatch.core"


@dataclass
class PluginLoadError:
    """A plugin that could not be loaded."""

    name: str
    distribution: str
    version: str
    error: str

    def message(self, skipped: bool = True) -> str:
        what = "failed to load and was skipped" if skipped else "failed to load"
        return f"plugin {self.name!r} from {self.distribution} {self.version} {what}: {self.error}"


class PluginError(ColorbatchError):
    """A plugin is broken in a way that must stop the program."""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def plugins_disabled() -> bool:
    return _truthy(os.environ.get("COLORBATCH_NO_PLUGINS"))


def strict_plugins() -> bool:
    return _truthy(os.environ.get("COLORBATCH_STRICT_PLUGINS"))


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus the load errors and distribution info we report."""

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.add_hookspecs(hookspecs)
        self.load_errors: list[PluginLoadError] = []
        self.dist_info: dict[str, tuple[str, str]] = {}

    def register_checked(self, plugin: Any, name: str, dist: tuple[str, str] | None = None):
        """Register ``plugin`` and fail on hook names that match no hookspec."""
        self.register(plugin, name=name)
        try:
            self.check_pending()
        except pluggy.PluginValidationError as exc:
            self.unregister(plugin)
            raise PluginError(f"plugin {name!r}: {exc}") from None
        self.dist_info[name] = dist or ("colorbatch", _own_version())
        return plugin

    def describe(self) -> list[dict]:
        """One dict per plugin: name, distribution, version, hooks."""
        rows = []
        for name, plugin in self.list_name_plugin():
            if plugin is None:
                continue
            hooks = sorted(h.name for h in self.get_hookcallers(plugin) or [])
            dist, version = self.dist_info.get(name, ("?", "?"))
            rows.append(
                {"name": name, "distribution": dist, "version": version, "hooks": hooks}
            )
        return rows


def _own_version() -> str:
    from colorbatch import __version__

    return __version__


def _entry_points():
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def load_entry_point_plugins(pm: PluginManager, strict: bool | None = None) -> None:
    strict = strict_plugins() if strict is None else strict
    for ep in _entry_points():
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "?"
        dist_version = dist.version if dist is not None else "?"
        if pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
            pm.register_checked(plugin, ep.name, (dist_name, dist_version))
        except Exception as exc:  # report, skip, go on
            err = PluginLoadError(ep.name, dist_name, dist_version, _one_line(exc))
            if strict:
                raise PluginError(
                    err.message(skipped=False) + "; fix or uninstall it, or unset COLORBATCH_STRICT_PLUGINS "
                    "to go on without it"
                ) from exc
            pm.load_errors.append(err)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def make_plugin_manager(
    *, no_plugins: bool | None = None, extra: list[Any] | None = None
) -> PluginManager:
    """Build a plugin manager with the core plugin and, unless disabled, entry points.

    ``extra`` plugins (objects or modules) are registered after the core one;
    tests use it to add a plugin without installing it.
    """
    from colorbatch import core

    pm = PluginManager()
    pm.register_checked(core, CORE_PLUGIN_NAME)
    if not (plugins_disabled() if no_plugins is None else no_plugins):
        load_entry_point_plugins(pm)
    for i, plugin in enumerate(extra or []):
        name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{i}"
        pm.register_checked(plugin, name, ("(registered in code)", "-"))
    return pm


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager (built on first use)."""
    pm = registry.process_manager()
    if pm is None:
        pm = make_plugin_manager()
        registry.set_process_manager(pm)
    return pm


def set_plugin_manager(pm: PluginManager | None) -> None:
    """Replace the process-wide manager (the CLI's --no-plugins and tests use it)."""
    registry.set_process_manager(pm)


def use_core_only() -> None:
    """Make the process-wide manager a core-only one (``--no-plugins``), unless one is built already."""
    if registry.process_manager() is None:
        registry.set_process_manager(make_plugin_manager(no_plugins=True))
