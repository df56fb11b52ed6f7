"""Plugin manager: entry points, load errors, strict mode, hook-name checks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from colorbatch import hookimpl
from colorbatch.plugins import PluginError, make_plugin_manager


def _fake_dist(root: Path, dist: str, module: str, body: str, ep_name: str) -> None:
    """Make an importable distribution with a colorbatch entry point under ``root``."""
    (root / f"{module}.py").write_text(textwrap.dedent(body))
    info = root / f"{dist}-9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 9.9\n")
    (info / "entry_points.txt").write_text(f"[colorbatch]\n{ep_name} = {module}\n")


def _cli(args, tmp_path, **env):
    e = {**os.environ, "PYTHONPATH": str(tmp_path), "COLUMNS": "200", **env}
    return subprocess.run([sys.executable, "-m", "colorbatch", *args], capture_output=True, text=True, env=e, timeout=120)


@pytest.fixture()
def broken_plugin(tmp_path):
    _fake_dist(tmp_path, "broken-plugin", "broken_plugin", "raise RuntimeError('boom at import')\n", "broken")
    _fake_dist(
        tmp_path,
        "hello-plugin",
        "hello_plugin",
        """
        from colorbatch import hookimpl

        @hookimpl
        def colorbatch_register_commands(app):
            @app.command()
            def hello():
                "Say hello."
                print("hello from a plugin")

            @app.command(name="run")
            def clash():
                print("should never run")
        """,
        "hello",
    )
    return tmp_path


def test_broken_plugin_is_reported_and_commands_work(broken_plugin):
    r = _cli(["plugins", "--json"], broken_plugin)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    names = [p["name"] for p in data["plugins"]]
    assert "colorbatch.core" in names and "hello" in names
    assert data["errors"][0]["name"] == "broken"
    assert data["errors"][0]["distribution"] == "broken-plugin"
    assert data["errors"][0]["version"] == "9.9"
    assert "boom at import" in data["errors"][0]["error"]
    r = _cli(["steps"], broken_plugin)
    assert r.returncode == 0, r.stderr
    assert "broken-plugin 9.9 failed to load" in r.stderr
    # the plugin's command works; its clashing "run" command was dropped
    r = _cli(["hello"], broken_plugin)
    assert r.returncode == 0 and "hello from a plugin" in r.stdout
    r = _cli(["--help"], broken_plugin)
    assert "clashes with an existing command" in r.stderr


def test_strict_plugins_makes_load_failure_an_error(broken_plugin):
    r = _cli(["plugins"], broken_plugin, COLORBATCH_STRICT_PLUGINS="1")
    assert r.returncode == 2
    assert "boom at import" in r.stderr and "COLORBATCH_STRICT_PLUGINS" in r.stderr


def test_no_plugins_switch(broken_plugin):
    for args, env in ((["--no-plugins", "plugins", "--json"], {}), (["plugins", "--json"], {"COLORBATCH_NO_PLUGINS": "1"})):
        r = _cli(args, broken_plugin, **env)
        assert r.returncode == 0, r.stderr
        data = json.loads(r.stdout)
        assert [p["name"] for p in data["plugins"]] == ["colorbatch.core"]
        assert data["errors"] == []


def test_misspelt_hookimpl_is_an_error_naming_it():
    class Typo:
        @hookimpl
        def colorbatch_register_step(self):  # missing "s"
            return []

    with pytest.raises(PluginError, match="colorbatch_register_step"):
        make_plugin_manager(no_plugins=True, extra=[Typo()])


def test_plugin_can_add_a_step():
    from pydantic import BaseModel, ConfigDict

    from colorbatch import registry
    from colorbatch.steps import ItemStep, StepDef

    class Opts(BaseModel):
        model_config = ConfigDict(extra="forbid")

    class Shout(ItemStep):
        def process(self, item):
            item.id = item.id.upper()
            return item

    class P:
        @hookimpl
        def colorbatch_register_steps(self):
            return [StepDef("shout", lambda: Opts, Shout, help="upper-case ids")]

    pm = make_plugin_manager(no_plugins=True, extra=[P()])
    steps = registry.steps(pm)
    assert "shout" in steps and "load" in steps
    assert steps["shout"].plugin.startswith("P")


def test_step_registered_twice_is_an_error():
    from colorbatch import registry
    from colorbatch.errors import ColorbatchError
    from colorbatch.steps import StepDef

    class P:
        @hookimpl
        def colorbatch_register_steps(self):
            return [StepDef("load", lambda: None, None)]

    pm = make_plugin_manager(no_plugins=True, extra=[P()])
    with pytest.raises(ColorbatchError, match="step 'load' is registered twice"):
        registry.steps(pm)
