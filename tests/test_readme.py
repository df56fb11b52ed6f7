"""The README's two commands are the ones CI runs."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _ci_command(name: str) -> str:
    text = (ROOT / ".ci" / "run").read_text()
    m = re.search(rf"^{name}='(.*)'$", text, re.M)
    assert m, f".ci/run has no {name}"
    return m.group(1)


def test_readme_commands_match_ci():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    assert _ci_command("SETUP_CMD") in blocks
    assert _ci_command("TEST_CMD") in blocks


def test_readme_documents_every_core_command():
    from colorbatch.cli import build_app
    from colorbatch.plugins import make_plugin_manager

    readme = (ROOT / "README.md").read_text()
    core = build_app(make_plugin_manager(no_plugins=True))  # the CLI's own and the core plugin's commands
    names = {c.name or c.callback.__name__ for c in core.registered_commands}
    assert {"run", "colorize", "evaluate", "models"} <= names
    for name in names:
        assert f"colorbatch {name}" in readme, name
