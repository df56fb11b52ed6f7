"""The command line: help speed-critical imports, validate, run, exit codes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ENV = {**os.environ, "COLORBATCH_NO_PLUGINS": "1", "COLUMNS": "200"}


def cli(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "colorbatch", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env or ENV,
        timeout=300,
    )


def test_help_and_plugins_do_not_import_torch():
    code = textwrap.dedent(
        """
        import sys
        from colorbatch.cli import main
        for args in (["--help"], ["plugins"], ["steps"]):
            try:
                main(args)
            except SystemExit:
                pass
        heavy = sorted(m for m in ("torch", "torchvision", "imageio", "skimage") if m in sys.modules)
        print("HEAVY:" + ",".join(heavy))
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert "HEAVY:\n" in r.stdout or r.stdout.strip().endswith("HEAVY:"), r.stdout[-500:] + r.stderr[-2000:]


def test_version():
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("colorbatch ")


def _recipe(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "r.toml"
    p.write_text(textwrap.dedent(body))
    return p


def test_validate_reports_every_problem_and_exits_2(tmp_path):
    p = _recipe(
        tmp_path,
        """
        schema_version = 1
        name = "bad"
        [[steps]]
        uses = "load"
        with = { sorce = "x" }
        [[steps]]
        uses = "sav"
        """,
    )
    r = cli("validate", p)
    assert r.returncode == 2
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 3, r.stderr  # unknown option, missing source, unknown step
    assert "steps[1] (load).sorce: unknown option; did you mean source?" in r.stderr
    assert "steps[1] (load).source: missing required option" in r.stderr
    assert "unknown step 'sav'; did you mean save?" in r.stderr
    assert "Traceback" not in r.stderr


def test_newer_schema_refused(tmp_path):
    p = _recipe(tmp_path, 'schema_version = 99\nname = "x"\n[[steps]]\nuses = "load"\n')
    r = cli("validate", p)
    assert r.returncode == 2 and "newer than this colorbatch understands" in r.stderr


def test_missing_recipe_one_line(tmp_path):
    r = cli("run", tmp_path / "nope.toml")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "recipe file not found" in r.stderr


def _photos(root: Path, n=3):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        arr = (rng.random((20, 30, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(root / f"p{i}.png")
    (root / "bad.png").write_bytes(b"not an image at all")


def test_run_dry_run_and_real_run_with_failures(tmp_path):
    _photos(tmp_path / "in")
    p = _recipe(
        tmp_path,
        """
        schema_version = 1
        name = "gray"
        run_dir = "run"
        [[steps]]
        uses = "load"
        with = { source = "in" }
        [[steps]]
        uses = "grayscale"
        [[steps]]
        uses = "save"
        with = { out = "{run_dir}/gray", format = "png" }
        """,
    )
    r = cli("run", p, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "grayscale" in r.stdout and str(tmp_path / "in") in r.stdout
    assert not (tmp_path / "run").exists()

    r = cli("run", p, "--json")
    assert r.returncode == 1, r.stderr  # one bad input
    summary = json.loads(r.stdout)
    assert (summary["ok"], summary["failed"]) == (3, 1)
    assert "bad.png" in summary["failures"][0]["item"]
    outs = sorted(x.name for x in (tmp_path / "run" / "gray").glob("*.png"))
    assert outs == ["p0.png", "p1.png", "p2.png"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["failed"] == 1

    # overrides reach the step; a rerun skips what is done
    r = cli("run", p, "--json", "--set", "steps.load.source=in/p0.png")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["skipped"] == 1

    r = cli("run", p, "steps.save.formt=png")
    assert r.returncode == 2 and "did you mean format?" in r.stderr


def test_steps_json_lists_core_steps_with_options():
    r = cli("steps", "--json")
    assert r.returncode == 0, r.stderr
    steps = {s["name"]: s for s in json.loads(r.stdout)}
    assert {"load", "grayscale", "train", "colorize", "evaluate", "save"} <= set(steps)
    load_opts = {o["name"]: o for o in steps["load"]["options"]}
    assert load_opts["source"]["required"] is True
    assert all(s["help"] for s in steps.values())


def test_models_lists_the_cache_and_the_selected_model(tmp_path):
    from colorbatch.models import build_model
    from colorbatch.models.checkpoint import publish, save_checkpoint

    env = {**ENV, "COLORBATCH_CACHE": str(tmp_path / "cache")}
    env.pop("COLORBATCH_MODEL", None)
    r = cli("models", "--json", env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    from colorbatch.models.checkpoint import shipped_model

    shipped = shipped_model()
    if shipped is None:
        assert data["models"] == [] and data["selected"] is None
    else:  # an empty cache: colorize uses the default that ships with colorbatch, and says so
        assert [m["shipped"] for m in data["models"]] == [True]
        assert data["selected"] == str(shipped.resolve()) and "ships with colorbatch" in data["why"]
        assert data["models"][0]["hints"] is True  # the shipped default takes colour hints

    model = build_model("efficientnet-lite0", "none", widths=(32, 16, 16, 16, 16))
    ckpt = save_checkpoint(tmp_path / "tiny.safetensors", model, {"test": True})
    os.environ["COLORBATCH_CACHE"], old = str(tmp_path / "cache"), os.environ.get("COLORBATCH_CACHE")
    try:
        published = publish(ckpt)
    finally:
        if old is None:
            del os.environ["COLORBATCH_CACHE"]
        else:
            os.environ["COLORBATCH_CACHE"] = old
    r = cli("models", "--json", env=env)
    data = json.loads(r.stdout)
    assert data["selected"] == str(published.resolve())
    assert [m["default"] for m in data["models"]][0] is True  # the published model wins
    assert data["models"][0]["hints"] is False
    assert not any(m["default"] for m in data["models"][1:])
    assert data["models"][0]["encoder"] == "efficientnet-lite0"


def test_the_cli_names_no_core_command_and_core_names_win():
    """colorize, evaluate and models come through the core plugin's command hook, like any plugin's;
    a third-party plugin's command of the same name is dropped with a warning."""
    import typer

    from colorbatch.api import hookimpl
    from colorbatch.cli import app, build_app
    from colorbatch.plugins import make_plugin_manager

    own = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert own.isdisjoint({"colorize", "evaluate", "models"}), own

    class Rival:
        @hookimpl
        def colorbatch_register_commands(self, app):
            @app.command()
            def colorize():
                "Not the core's."

            @app.command()
            def extra():
                "A new name."

    whole = build_app(make_plugin_manager(no_plugins=True, extra=[Rival()]))
    names = [c.name or c.callback.__name__ for c in whole.registered_commands]
    assert {"run", "colorize", "evaluate", "models", "extra"} <= set(names)
    assert names.count("colorize") == 1
    colorize = next(c for c in whole.registered_commands if c.name == "colorize")
    assert colorize.callback.__module__ == "colorbatch.core_commands"
    assert isinstance(whole, typer.Typer)


@pytest.mark.parametrize("code, rc, said", [(3, 3, ""), (None, 0, ""), ("bad thing", 1, "bad thing")])
def test_the_quick_exit_keeps_what_a_normal_exit_does(code, rc, said):
    """Once torch is loaded the command ends with os._exit (the interpreter's teardown costs a
    second): threads still finish, atexit handlers run, buffered output is flushed, and the
    exit code is the one sys.exit would give."""
    script = textwrap.dedent(
        f"""
        import atexit, sys, threading, time
        import torch
        from colorbatch.cli import fast_exit
        atexit.register(lambda: print("atexit ran", flush=False))
        threading.Thread(target=lambda: (time.sleep(0.3), print("thread done", flush=False))).start()
        sys.stdout.write("buffered ")
        fast_exit({code!r})
        print("not reached")
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == rc, (r.returncode, r.stderr[-2000:])
    assert r.stdout.split() == ["buffered", "thread", "done", "atexit", "ran"], r.stdout
    assert said in r.stderr


def test_the_command_ends_with_its_exit_code_after_torch_was_loaded(tmp_path):
    """A run that fails an item loads torch and exits 1 through the quick exit, its summary printed whole."""
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((40, 50), 120, np.uint8)).save(src / "ok.png")
    (src / "broken.png").write_bytes(b"not an image")
    r = cli("colorize", src, "--out", tmp_path / "out", "--json", "--model", _tiny_model(tmp_path))
    assert r.returncode == 1, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert summary["failed"] == 1 and (tmp_path / "out" / "ok.png").is_file()


def _tiny_model(tmp_path):
    import torch

    from colorbatch.models import build_model
    from colorbatch.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "tiny.safetensors", build_model("efficientnet-lite0", "none", widths=(32, 16, 16, 16, 16)),
                           {"test": True})
