"""Checks of a checkpoint before it is used: the JSON sidecar's schema and bounds, finite tensors.

A sidecar is plain JSON that people copy, edit and damage. Each field the
loader relies on is checked for its type and a sane range before anything is
built, so a wrong type (``"widths": "lots"``) or an absurd value (widths of a
billion channels, which would try to allocate terabytes) is one line naming the
file and the field, never an internal error. Fields this module does not know
are left alone (newer writers may add some).

The tensors are checked after loading: a NaN or infinite weight (a training run
that diverged) would make every output fail, so the model is refused at load.
"""
from __future__ import annotations

from pathlib import Path

from colorbatch.errors import ColorbatchError

MAX_WIDTH = 4096  # channels of one decoder stage (the default model uses 256 at most)
MAX_STAGES = 16
STRIDES = (1, 2, 4, 8, 16, 32, 64)
ENCODER_TENSORS = ("included", "weights-package")

_FIX = "the sidecar is damaged or was edited by hand: restore it, or use another checkpoint"


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bad(json_file, field: str, expected: str, value) -> ColorbatchError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ColorbatchError(f"model {json_file}: \"{field}\" must be {expected} (got {shown}); {_FIX}")


def validate_sidecar(meta: dict, json_file: str | Path) -> dict:
    """Check the fields of a checkpoint's JSON that loading relies on; return ``meta``."""
    version = meta.get("format_version", 1)
    if not _int(version) or version < 1:
        raise _bad(json_file, "format_version", "a whole number >= 1", version)
    for key in ("id", "colorbatch_version", "created"):
        if key in meta and meta[key] is not None and not isinstance(meta[key], str):
            raise _bad(json_file, key, "text", meta[key])
    if "tensors" in meta and meta["tensors"] is not None and (not _int(meta["tensors"]) or meta["tensors"] < 0):
        raise _bad(json_file, "tensors", "a count", meta["tensors"])
    if "encoder_tensors" in meta and meta["encoder_tensors"] not in ENCODER_TENSORS:
        raise _bad(json_file, "encoder_tensors", " or ".join(ENCODER_TENSORS), meta["encoder_tensors"])
    for key in ("config", "calibration", "training"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise _bad(json_file, key, "a table (JSON object) or null", meta[key])

    arch = meta.get("model")
    if not isinstance(arch, dict):
        raise _bad(json_file, "model", "a table (JSON object) describing the architecture", arch)
    encoder = arch.get("encoder")
    if not isinstance(encoder, str) or not encoder.strip():
        raise _bad(json_file, "model.encoder", "an encoder name such as \"efficientnet-lite0\"", encoder)
    for key in ("name", "head", "encoder_weights"):
        if key in arch and arch[key] is not None and not isinstance(arch[key], str):
            raise _bad(json_file, f"model.{key}", "text", arch[key])
    for key in ("freeze_encoder", "hints"):
        if key in arch and not isinstance(arch[key], bool):
            raise _bad(json_file, f"model.{key}", "true or false", arch[key])
    widths = arch.get("widths")
    if widths is not None and not (
        isinstance(widths, list)
        and 1 <= len(widths) <= MAX_STAGES
        and all(_int(w) and 1 <= w <= MAX_WIDTH for w in widths)
    ):
        raise _bad(json_file, "model.widths", f"a list of 1 to {MAX_STAGES} whole numbers from 1 to {MAX_WIDTH}",
                   widths)
    stride = arch.get("out_stride")
    if stride is not None and not (_int(stride) and stride in STRIDES):
        raise _bad(json_file, "model.out_stride", "one of " + ", ".join(map(str, STRIDES)), stride)
    return meta


def check_tensors(state: dict, path: str | Path) -> None:
    """Refuse a state dict with NaN or infinite values, naming the first such tensor."""
    import torch

    for name, tensor in state.items():
        if not (torch.is_tensor(tensor) and tensor.is_floating_point()):
            continue
        if bool(torch.isfinite(tensor).all()):
            continue
        kind = "NaN" if bool(torch.isnan(tensor).any()) else "infinite"
        raise ColorbatchError(
            f"model {path}: tensor {name} holds {kind} values (a training run that diverged?); "
            "this checkpoint cannot colorize anything: use another checkpoint or retrain"
        )
