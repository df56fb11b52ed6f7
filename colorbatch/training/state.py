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


def load_state(path: Path) -> dict:
    """Read a state file without unpickling code (``weights_only=True``)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def to_cpu(obj):
    """A copy of a (nested) state dict with every tensor on the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj
