"""The house's layers (docs/architecture.md) are enforced by import-linter's contracts in pyproject.toml."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "colorbatch"


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]


def test_import_contracts_are_kept(capsys, monkeypatch):
    pytest.importorskip("importlinter", reason="pip install -e '.[test]' installs import-linter")
    from importlinter.application.use_cases import lint_imports
    from importlinter.configuration import configure

    configure()  # what the lint-imports command does first

    monkeypatch.chdir(ROOT)
    kept = lint_imports(config_filename=str(ROOT / "pyproject.toml"), cache_dir=None, no_logo=True)
    out = capsys.readouterr().out
    assert kept, out
    assert "4 kept, 0 broken" in out, out


def test_the_contracts_we_promise_are_configured():
    ids = {c["id"]: c for c in _config()["contracts"]}
    assert set(ids) == {"layers", "models-no-host", "no-cycles", "plugins-api-only"}
    assert ids["no-cycles"]["type"] == "acyclic_siblings"
    assert ids["plugins-api-only"]["type"] == "forbidden"
    assert "colorbatch.api" not in ids["plugins-api-only"]["forbidden_modules"]


def test_every_module_is_in_a_layer():
    """A new module must be placed in a layer (else no contract would look at it)."""
    layers = _config()["contracts"][0]["layers"]
    placed = {name.strip() for layer in layers for name in layer.split(":")}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    modules |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert not modules - placed, f"put these in a layer in pyproject.toml: {sorted(modules - placed)}"
    assert not placed - modules, f"layers name modules that do not exist: {sorted(placed - modules)}"


def test_architecture_doc_names_every_layer():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for layer in ("Face", "Host", "Core", "Ground", "Extras"):
        assert layer in doc
    for module in ("colorbatch.api", "registry", "messages", "lint-imports"):
        assert module in doc, module


def test_plugins_are_checked_by_name():
    """Every plugin distribution in plugins/ is a root package of the contracts."""
    roots = set(_config()["root_packages"])
    ours = {p.name for p in (ROOT / "plugins").glob("*/colorbatch_*") if (p / "__init__.py").is_file()}
    assert ours and ours <= roots, ours - roots


def test_no_training_namespace_package():
    # import-linter (grimp) only sees regular packages
    for sub in ("steps", "models", "training"):
        assert os.path.isfile(PACKAGE / sub / "__init__.py"), sub
