"""Helpers for the tests of what colorbatch promises about a user's files.

A tiny untrained model, the real command line in a subprocess, and a driver that
runs the command line with an observer plugin which, at the first ``saved``
event, records the process's children and then blocks, so that a test can send
a signal at a known point of a run (no sleeps, no timing).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ENV = {**os.environ, "COLORBATCH_NO_PLUGINS": "1", "COLUMNS": "200", "OMP_NUM_THREADS": "1"}


def tiny_model(folder: Path) -> Path:
    """An untrained small checkpoint (plumbing, not quality)."""
    import torch

    from colorbatch.models import build_model
    from colorbatch.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_model("efficientnet-lite0", "none", widths=(32, 16, 16, 16, 16))
    with torch.no_grad():
        model.decoder.head.weight.mul_(0.2)
    return save_checkpoint(Path(folder) / "tiny.safetensors", model, {"test": True})


def cli(*args, cwd=None, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "colorbatch", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env or ENV, timeout=600, **kw)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(("error:", "internal error:"))]


def hidden_files(folder: Path, keep=(".colorbatch-manifest.jsonl",)) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob(".*") if p.name not in keep)


DRIVER = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from pathlib import Path
    from colorbatch import hookimpl, plugins

    # as in a terminal: a process started in the background of a non-interactive shell
    # inherits SIGINT ignored, and Python then installs no handler for it
    signal.signal(signal.SIGINT, signal.default_int_handler)

    READY = Path(os.environ["PROMISE_READY"])

    def children():
        pids = []
        for task in os.listdir("/proc/self/task"):
            try:
                pids += [int(p) for p in Path(f"/proc/self/task/{task}/children").read_text().split()]
            except OSError:
                pass
        return pids

    class Block:
        @hookimpl
        def colorbatch_event(self, run, name, data):
            if name == "saved" and not READY.exists():
                tmp = READY.with_suffix(".part")
                tmp.write_text(json.dumps({"children": children()}))
                os.replace(tmp, READY)
                while True:  # until a signal arrives
                    time.sleep(0.05)

    plugins.set_plugin_manager(plugins.make_plugin_manager(no_plugins=True, extra=[Block()]))
    from colorbatch.cli import main
    main(sys.argv[1:])
    """
)


def alive(pid: int) -> bool:
    """True when ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def run_until_saved_then_signal(args, tmp_path: Path, sig=signal.SIGTERM, env=None):
    """Run ``colorbatch ARGS`` in the blocking driver; at the first saved output send ``sig``.

    Returns (returncode, stdout, stderr, children seen at that point).
    """
    ready = tmp_path / "ready.json"
    env = {**(env or ENV), "PROMISE_READY": str(ready)}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 600  # only so that a broken run cannot hang the suite
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                out, err = proc.communicate()
                raise AssertionError(f"the run ended before its first output (rc {proc.returncode}):\n{err[-3000:]}")
            time.sleep(0.05)
        seen = json.loads(ready.read_text())["children"]
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err, seen
