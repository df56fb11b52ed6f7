"""Device choice, mixed precision and CPU thread sizing."""
from __future__ import annotations

import os

from colorbatch.errors import ColorbatchError

DEVICES = ("auto", "cpu", "cuda", "mps")


def cpu_cores() -> int:
    """Cores this process may use (affinity aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def pick_device(name: str | None = "auto"):
    """``auto`` = cuda, then mps, then cpu; an explicit device must be available.

    Also accepts ``cuda:N``. Returns a ``torch.device``.
    """
    import torch

    name = (name or "auto").strip().lower()
    base = name.split(":", 1)[0]
    if base not in DEVICES:
        raise ColorbatchError(f"device {name!r}: unknown; use one of {', '.join(DEVICES)}")
    mps_ok = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if base == "auto":
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            return torch.device("cuda", local % max(1, torch.cuda.device_count()))
        if mps_ok:
            return torch.device("mps")
        return torch.device("cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise ColorbatchError("device cuda: no CUDA GPU is available to torch here; use --device cpu or auto")
    if base == "mps" and not mps_ok:
        raise ColorbatchError("device mps: Apple's MPS backend is not available here; use --device cpu or auto")
    return torch.device(name)


def autocast_dtype(device):
    """bf16 autocast on CUDA only (CPUs without bf16 units are 8-45x slower in bf16)."""
    import torch

    return torch.bfloat16 if torch.device(device).type == "cuda" else None


def autocast(device):
    """A context manager: bf16 autocast on CUDA, nothing elsewhere."""
    from contextlib import nullcontext

    import torch

    dtype = autocast_dtype(device)
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)


def default_workers() -> int:
    """DataLoader workers by default: a core for the model, the rest decode (at most 4)."""
    return max(0, min(4, cpu_cores() - 1))


def configure_threads(device, workers: int = 0) -> int:
    """On CPU, size torch's intra-op threads to the cores left after ``workers``.

    More threads than free cores is catastrophic (15x slower measured), so this
    never sets more than ``cores - workers`` (at least 1). Respects an explicit
    OMP_NUM_THREADS / torch.set_num_threads set lower by the user. Returns the count.
    """
    import torch

    if torch.device(device).type != "cpu":
        return torch.get_num_threads()
    free = max(1, cpu_cores() - max(0, int(workers)))
    env = os.environ.get("OMP_NUM_THREADS")
    if env and env.isdigit():
        free = min(free, max(1, int(env)))
    free = min(free, torch.get_num_threads()) if getattr(configure_threads, "_set", False) else free
    torch.set_num_threads(free)
    configure_threads._set = True
    return free
