"""PyTorch's own distributed engine, for runs launched by ``torchrun``.

``torchrun --nproc-per-node N -m colorbatch run recipe.toml`` starts N copies of
the command with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` set. :func:`setup` joins the process group (``nccl`` on CUDA,
``gloo`` otherwise) once per process; the helpers below are no-ops in a plain
single-process run, so the training loop calls them unconditionally.
"""
from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def env_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def setup(device: torch.device) -> bool:
    """Join the process group when launched by torchrun; return True if distributed.

    On CUDA each process uses the GPU ``LOCAL_RANK``. Calling it twice is harmless.
    """
    if env_world_size() <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        timeout = timedelta(seconds=int(os.environ.get("COLORBATCH_DIST_TIMEOUT", "1800")))
        dist.init_process_group(backend=backend, timeout=timeout)
    return True


def local_device(device: torch.device) -> torch.device:
    """The device of this process: ``cuda:LOCAL_RANK`` on multi-GPU runs."""
    if device.type == "cuda" and env_world_size() > 1:
        idx = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(idx)
        return torch.device("cuda", idx)
    return device


def all_reduce_sum(values: list[float], device: torch.device | None = None) -> list[float]:
    """Sum ``values`` over all ranks (returns them unchanged when not distributed)."""
    if not active():
        return list(values)
    dev = device if device is not None and dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def any_rank(flag: bool, device: torch.device | None = None) -> bool:
    """True on every rank if ``flag`` is true on any (e.g. stop: time budget, SIGTERM)."""
    if not active():
        return flag
    return all_reduce_sum([1.0 if flag else 0.0], device)[0] > 0


def broadcast_object(obj, src: int = 0):
    """``obj`` from rank ``src`` on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    if active():
        dist.barrier()


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` when distributed; else ``model``."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    # parameters stay identical on every rank (gradients are averaged); BatchNorm running
    # statistics of the decoder are per rank, and rank 0's are the ones checkpointed
    return DDP(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)


def teardown() -> None:
    """Leave the process group (end of the run)."""
    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()
