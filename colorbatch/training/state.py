"""Training state on disk: what an exact resume needs besides the weights.

The model itself goes through :func:`colorbatch.models.checkpoint.save_checkpoint`
(safetensors + JSON). Everything else (optimizer and scheduler state, epoch,
position inside the epoch, running loss sums, best validation loss, the
rebalancing weights and the RNG states of python, numpy and torch) is written
next to it as ``<name>.state.pt`` with ``torch.save``, holding only tensors and
plain Python values, and read back with ``torch.load(weights_only=True)``: no
pickled code is ever executed.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "python": _listify(random.getstate()),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_tupleify(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _listify(x):
    if isinstance(x, tuple):
        return [_listify(v) for v in x]
    return x


def _tupleify(x):
    if isinstance(x, list):
        return tuple(_tupleify(v) for v in x)
    return x


def state_path(checkpoint: Path) -> Path:
    """``last.safetensors`` -> ``last.state.pt``."""
    return checkpoint.with_name(checkpoint.stem + ".state.pt")


def save_state(path: Path, state: dict) -> None:
    """Atomic ``torch.save`` of a dict of tensors and plain values."""
    from colorbatch.atomic import atomic_write

    atomic_write(path, lambda tmp: torch.save(state, tmp))


#: entries an exact resume reads, and the types they must have
REQUIRED = {
    "epoch": int,
    "batch_in_epoch": int,
    "step": int,
    "sums": (list, tuple),
    "optimizer": dict,
    "scheduler": dict,
    "rng": dict,
    "loss_weights": torch.Tensor,
}


def _corrupt(path: Path, reason: str) -> "ColorbatchError":
    from colorbatch.errors import ColorbatchError

    return ColorbatchError(
        f"{path}: the training state is corrupt ({reason}); --resume cannot continue from it: "
        "restore the file from a backup, or run without --resume to start this training over "
        "(its checkpoints are then replaced)"
    )


def load_state(path: Path) -> dict:
    """Read a state file without unpickling code (``weights_only=True``).

    A file that is damaged, truncated, foreign or lacks what a resume needs is one
    :class:`~colorbatch.errors.ColorbatchError` naming it and what to do.
    """
    import pickle
    import zipfile

    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise _corrupt(path, "the file is missing") from None
    except OSError as exc:
        raise _corrupt(path, f"cannot read it: {exc.strerror or type(exc).__name__}") from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, RuntimeError, ValueError, TypeError,
            AttributeError, ImportError, IndexError, KeyError) as exc:
        text = str(exc)
        if isinstance(exc, EOFError) or "zip archive" in text or "central directory" in text:
            reason = "truncated or damaged file"
        elif isinstance(exc, pickle.UnpicklingError) or "weights_only" in text:
            reason = "it holds objects other than tensors and plain values: not a state colorbatch wrote"
        else:
            reason = f"unreadable: {type(exc).__name__}"
        raise _corrupt(path, reason) from None
    if not isinstance(state, dict):
        raise _corrupt(path, f"it holds a {type(state).__name__}, not the state of a training run")
    for key, kind in REQUIRED.items():
        if key not in state:
            raise _corrupt(path, f"no {key!r} entry")
        value = state[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _corrupt(path, f"{key!r} has the wrong type ({type(value).__name__})")
    if len(state["sums"]) != 3 or not all(isinstance(v, (int, float)) for v in state["sums"]):
        raise _corrupt(path, "'sums' is not three numbers")
    if not {"state", "param_groups"} <= set(state["optimizer"]):
        raise _corrupt(path, "'optimizer' is not an optimizer state")
    if not {"python", "numpy", "torch"} <= set(state["rng"]):
        raise _corrupt(path, "'rng' lacks a random-number state")
    return state


def to_cpu(obj):
    """A copy of a (nested) state dict with every tensor on the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj
