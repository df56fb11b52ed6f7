"""Plugins import only ``colorbatch.api``; the API exports what it documents; a plugin command
written against it gets the core's error handling and exit codes."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"


def _colorbatch_imports(path: Path):
    """(line, module, names) of every import of colorbatch in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "colorbatch" or alias.name.startswith("colorbatch."):
                    yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "colorbatch" or node.module.startswith("colorbatch."):
                yield node.lineno, node.module, [a.name for a in node.names]


def test_plugins_import_only_the_public_api():
    files = sorted(PLUGINS.glob("*/colorbatch_*/**/*.py")) + sorted(PLUGINS.glob("*/tests/**/*.py"))
    assert files, "no plugin sources found"
    bad = []
    for path in files:
        if "/tests/" in path.as_posix():
            continue  # tests may poke at internals; the plugins themselves may not
        for line, module, names in _colorbatch_imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if module == "colorbatch" and names == ["api"]:
                continue
            if module != "colorbatch.api":
                bad.append(f"{where}: imports {module}")
                continue
            bad += [f"{where}: imports private name {n}" for n in names if n.startswith("_") and n != "__version__"]
    assert not bad, "plugins must import only colorbatch.api:\n" + "\n".join(bad)


def test_the_check_catches_a_private_import(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("from colorbatch.cli import _pm\nimport colorbatch.runner\nfrom colorbatch.api import hookimpl\n")
    found = list(_colorbatch_imports(p))
    assert [m for _, m, _ in found] == ["colorbatch.cli", "colorbatch.runner", "colorbatch.api"]


def test_api_exports_resolve_and_stay_cheap():
    import subprocess
    import sys

    code = (
        "import sys, colorbatch.api as api\n"
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)\n"
        "missing = [n for n in api.__all__ if getattr(api, n, None) is None]\n"
        "assert not missing, missing\n"
        "print('OK')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "OK", r.stderr[-2000:]


def test_api_documents_every_export():
    import colorbatch.api as api

    doc = api.__doc__
    for name in api.__all__:
        assert f"``{name}" in doc, f"colorbatch.api docstring does not mention {name}"


def test_plugin_command_gets_core_error_handling(tmp_path):
    """A command written only against colorbatch.api: same one-line errors and exit codes as `colorbatch run`."""
    import typer
    from typer.testing import CliRunner

    from colorbatch.api import ColorbatchError, ExitCode, RecipeError, handle_errors

    app = typer.Typer()

    @app.command()
    @handle_errors
    def boom(kind: str):
        if kind == "usage":
            raise ColorbatchError("bad input: use a folder")
        if kind == "recipe":
            raise RecipeError(["steps[0].x: unknown option", "steps[1].y: unknown option"])
        if kind == "interrupt":
            raise KeyboardInterrupt
        if kind == "bug":
            raise ZeroDivisionError("oops")

    runner = CliRunner()
    cases = {"usage": ExitCode.USAGE, "recipe": ExitCode.USAGE, "interrupt": ExitCode.INTERRUPTED,
             "bug": ExitCode.INTERNAL, "ok": ExitCode.OK}
    for kind, code in cases.items():
        r = runner.invoke(app, [kind])
        assert r.exit_code == int(code), (kind, r.exit_code, r.output)
        assert "Traceback" not in r.output
    assert "error: bad input: use a folder" in runner.invoke(app, ["usage"]).output
    assert "internal error: ZeroDivisionError: oops" in runner.invoke(app, ["bug"]).output


def test_plugin_command_and_core_command_agree(tmp_path, monkeypatch):
    """The same bad recipe: `colorbatch run` and a plugin command running it through the API exit alike."""
    import typer
    from typer.testing import CliRunner

    from colorbatch.api import build_plan, handle_errors, plugin_manager, steps_of
    from colorbatch.cli import app as core_app

    recipe = tmp_path / "r.toml"
    recipe.write_text('schema_version = 1\n[[steps]]\nuses = "load"\nwith = { source = "nowhere", sise = 3 }\n')
    monkeypatch.setenv("COLORBATCH_NO_PLUGINS", "1")
    plugin_app = typer.Typer()

    @plugin_app.command()
    @handle_errors
    def mine(path: Path):
        import tomllib

        build_plan(tomllib.loads(path.read_text()), steps_of(plugin_manager()), label=str(path),
                   base_dir=path.parent)

    runner = CliRunner()
    core = runner.invoke(core_app, ["validate", str(recipe)])
    plug = runner.invoke(plugin_app, [str(recipe)])
    assert core.exit_code == plug.exit_code == 2, (core.output, plug.output)
    assert "sise" in plug.output and "did you mean" in plug.output


@pytest.mark.parametrize("name", ["video", "watch", "report", "autocontrast", "studio"])
def test_our_plugins_are_loaded_through_entry_points(name):
    from importlib import metadata

    names = {ep.name for ep in metadata.entry_points(group="colorbatch")}
    assert any(name in n for n in names), names
