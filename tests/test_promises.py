"""What colorbatch promises about a user's files, checked through the real command line.

* an input is never an output, whatever the flags;
* a file in the output folder that colorbatch did not write is kept (reported as a conflict)
  unless --overwrite says to replace it;
* any file name the file system takes (not UTF-8, 250 bytes) is written and recorded;
* temporary files left by a killed run are cleaned by the next run;
* ``{run_dir}`` paths stay inside the run folder.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from _promise_lib import ENV, cli, error_lines, hidden_files, tiny_model
from colorbatch.testing import recipe_text, save_tiny_image

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.set_num_threads(1)
    return tiny_model(tmp_path_factory.mktemp("model"))


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _colorize(src, out, model_path, *extra):
    return cli("colorize", src, "--out", out, "-m", model_path, "-j", "0", "--size", "64", "--json", *extra)


# ---- 1. an input is never an output -------------------------------------------------------


def test_input_is_never_an_output_even_with_overwrite(tmp_path, model_path):
    src = tmp_path / "photos"
    a = save_tiny_image(src / "a.png", mode="L")
    before = _sha(a)
    r = _colorize(src, src, model_path, "--format", "png", "--overwrite")
    assert _sha(a) == before
    assert r.returncode == 1, r.stderr
    failure = json.loads(r.stdout)["failures"][0]["error"]
    assert "is the input itself" in failure and "whatever the flags" in failure, failure


# ---- 2. a file of the user's in --out is kept ------------------------------------------------


def test_a_foreign_file_in_out_is_kept_and_reported_as_a_conflict(tmp_path, model_path):
    src = tmp_path / "in"
    save_tiny_image(src / "a.png", mode="L")
    save_tiny_image(src / "b.png", mode="L", seed=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"my own notes, not a colorbatch output")

    r = _colorize(src, out, model_path)
    assert (out / "a.png").read_bytes() == b"my own notes, not a colorbatch output"
    assert r.returncode == 1, r.stderr
    s = json.loads(r.stdout)
    assert (s["ok"], s["failed"]) == (1, 1)
    message = s["failures"][0]["error"]
    assert "conflict" in message and "a.png" in message and "--overwrite" in message, message

    again = _colorize(src, out, model_path)  # still kept, still reported: never silently skipped
    assert (out / "a.png").read_bytes() == b"my own notes, not a colorbatch output"
    assert again.returncode == 1 and json.loads(again.stdout)["failed"] == 1

    forced = _colorize(src, out, model_path, "--overwrite")  # the user says to replace it
    assert forced.returncode == 0, forced.stderr
    assert (out / "a.png").read_bytes()[:4] == b"\x89PNG"


def test_outputs_colorbatch_wrote_are_redone_without_a_conflict(tmp_path, model_path):
    src = tmp_path / "in"
    save_tiny_image(src / "a.png", mode="L")
    out = tmp_path / "out"
    assert _colorize(src, out, model_path).returncode == 0
    os.utime(src / "a.png", ns=(1, 1))  # a changed input: the output is redone in place
    r = _colorize(src, out, model_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ok"] == 1


# ---- 8, 9. any name the file system takes --------------------------------------------------


@pytest.mark.parametrize("fmt", [None, "jpg"])
def test_a_name_that_is_not_utf8_is_written_and_recorded(tmp_path, model_path, fmt):
    src = tmp_path / "in"
    name = os.fsdecode(b"caf\xe9 \xff.png")  # Latin-1 bytes: not valid UTF-8
    save_tiny_image(src / name, mode="L")
    out = tmp_path / "out"
    extra = ("--format", fmt) if fmt else ()
    r = _colorize(src, out, model_path, *extra)
    assert r.returncode == 0, r.stdout + r.stderr
    written = [p for p in out.iterdir() if not p.name.startswith(".")]
    assert len(written) == 1 and os.fsencode(written[0].name).startswith(b"caf\xe9 \xff.")
    again = _colorize(src, out, model_path, *extra)  # recorded: the rerun skips it
    assert again.returncode == 0, again.stderr
    s = json.loads(again.stdout)
    assert (s["ok"], s["skipped"]) == (0, 1)


def test_a_250_byte_name_is_written(tmp_path, model_path):
    src = tmp_path / "in"
    name = "n" * 246 + ".png"
    assert len(name.encode()) == 250
    save_tiny_image(src / name, mode="L")
    out = tmp_path / "out"
    r = _colorize(src, out, model_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (out / name).is_file()
    assert hidden_files(out) == []


# ---- kill -9 leaves temporary files: the next run removes them --------------------------------


def test_temporary_files_of_a_killed_run_are_removed_by_the_next_run(tmp_path, model_path):
    src = tmp_path / "in"
    save_tiny_image(src / "a.png", mode="L")
    out = tmp_path / "out"
    out.mkdir()
    killed = textwrap.dedent(
        """
        import os, signal, sys
        from colorbatch.atomic import atomic_write
        atomic_write(sys.argv[1], lambda tmp: os.kill(os.getpid(), signal.SIGKILL))
        """
    )
    r = subprocess.run([sys.executable, "-c", killed, str(out / "a.png")], env=ENV)
    assert r.returncode == -signal.SIGKILL
    assert len(hidden_files(out)) == 1  # what kill -9 leaves behind
    r = _colorize(src, out, model_path)
    assert r.returncode == 0, r.stderr
    assert hidden_files(out) == []
    assert (out / "a.png").is_file()


def test_temporary_files_of_running_writers_and_other_hosts_are_kept(tmp_path):
    from colorbatch.atomic import _host, clean_stale_temps, temp_prefix

    mine = tmp_path / (temp_prefix(tmp_path / "a.png") + "abcdefgh.tmp")  # this process: running
    other = "111111" if _host() != "111111" else "222222"
    remote = tmp_path / f".b.png.cb-{other}-999999999-abcdefgh.tmp"  # a writer on another host
    unrelated = tmp_path / ".c.png.abcdefgh.tmp"  # not a name colorbatch makes
    for p in (mine, remote, unrelated):
        p.write_bytes(b"")
    assert clean_stale_temps(tmp_path) == 0
    assert mine.exists() and remote.exists() and unrelated.exists()


# ---- 10. {run_dir} stays inside the run folder -------------------------------------------------


def test_run_dir_paths_cannot_leave_the_run_folder(tmp_path):
    src = tmp_path / "in"
    save_tiny_image(src / "a.png", mode="L")
    recipe = tmp_path / "deep" / "r.toml"
    recipe.parent.mkdir()
    recipe.write_text(recipe_text(
        [("load", {"source": str(src)}), ("grayscale", {}), ("save", {"out": "{run_dir}/../../escaped"})],
        name="esc", run_dir=str(tmp_path / "deep" / "runs" / "esc")))
    r = cli("run", recipe)
    assert r.returncode == 2, r.stderr
    assert not (tmp_path / "deep" / "escaped").exists() and not (tmp_path / "escaped").exists()
    errors = error_lines(r.stderr)
    assert len(errors) == 1 and "(save).out" in errors[0] and "run folder" in errors[0], r.stderr
