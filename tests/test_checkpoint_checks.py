"""A broken model is one clear line and exit 2, never an internal error.

* a checkpoint sidecar (.json) with a wrong type or an absurd value;
* a checkpoint whose tensors hold NaN or infinity.
"""
from __future__ import annotations

import json
import resource
import shutil
from pathlib import Path

import pytest

from _promise_lib import cli, error_lines, tiny_model
from colorbatch.testing import save_tiny_image

torch = pytest.importorskip("torch")

MEMORY_CAP = 8 << 30  # an absurd architecture must fail cleanly, not eat the machine


def _capped():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.set_num_threads(1)
    return tiny_model(tmp_path_factory.mktemp("model"))


def _variant(model_path: Path, folder: Path, edit_meta=None, edit_tensors=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / "variant.safetensors"
    shutil.copyfile(model_path, dest)
    meta = json.loads(model_path.with_suffix(".json").read_text())
    if edit_meta:
        edit_meta(meta)
    dest.with_suffix(".json").write_text(json.dumps(meta))
    if edit_tensors:
        from safetensors.torch import load_file, save_file

        state = load_file(str(dest))
        edit_tensors(state)
        save_file(state, str(dest), metadata={"format": "colorbatch-checkpoint"})
    return dest


def _set(path, value):
    def edit(meta):
        node = meta
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def _poison(value):
    def edit(state):
        key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1 and "decoder" in k)
        state[key].view(-1)[0] = value
    return edit


SIDECARS = [
    ("wrong type of widths", _set(("model", "widths"), "lots"), "widths"),
    ("absurd widths", _set(("model", "widths"), [1_000_000_000] * 5), "widths"),
    ("negative widths", _set(("model", "widths"), [-3, 16, 16, 16, 16]), "widths"),
    ("too many widths", _set(("model", "widths"), [16] * 500), "widths"),
    ("wrong out_stride", _set(("model", "out_stride"), 3), "out_stride"),
    ("out_stride a string", _set(("model", "out_stride"), "two"), "out_stride"),
    ("encoder not a name", _set(("model", "encoder"), ["efficientnet-lite0"]), "encoder"),
    ("format_version not a number", _set(("format_version",), "one"), "format_version"),
    ("freeze_encoder not a boolean", _set(("model", "freeze_encoder"), "maybe"), "freeze_encoder"),
]


@pytest.mark.parametrize("what, edit, field", SIDECARS, ids=[s[0] for s in SIDECARS])
def test_a_bad_sidecar_is_one_line_and_exit_2(tmp_path, model_path, what, edit, field):
    bad = _variant(model_path, tmp_path / "m", edit_meta=edit)
    save_tiny_image(tmp_path / "in" / "a.png", mode="L")
    r = cli("colorize", tmp_path / "in", "--out", tmp_path / "out", "-m", bad, "-j", "0", "--size", "64",
            preexec_fn=_capped)
    assert r.returncode == 2, r.stderr[-3000:]
    errors = error_lines(r.stderr)
    assert len(errors) == 1 and "variant.json" in errors[0] and field in errors[0], r.stderr[-3000:]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_weights_are_refused_at_load(tmp_path, model_path, value):
    bad = _variant(model_path, tmp_path / "m", edit_tensors=_poison(value))
    save_tiny_image(tmp_path / "in" / "a.png", mode="L")
    save_tiny_image(tmp_path / "in" / "b.png", mode="L", seed=1)
    r = cli("colorize", tmp_path / "in", "--out", tmp_path / "out", "-m", bad, "-j", "0", "--size", "64")
    assert r.returncode == 2, r.stderr[-3000:]
    errors = error_lines(r.stderr)
    assert len(errors) == 1 and "variant.safetensors" in errors[0], r.stderr[-3000:]
    assert ("NaN" if value != value else "infinite") in errors[0]
    assert "failed:" not in r.stderr  # not one failure per item


def test_the_sidecar_of_a_real_checkpoint_passes(model_path):
    from colorbatch.models.checkpoint import load_checkpoint

    model, meta = load_checkpoint(model_path)
    assert meta["model"]["widths"] == [32, 16, 16, 16, 16]
