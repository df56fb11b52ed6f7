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


def device_type(device) -> str:
    """``cpu``, ``cuda``, ``mps``...: the kind of a device given as a name (``cuda:1``), a
    :class:`CpuDevice` or a ``torch.device``, without importing torch."""
    return str(getattr(device, "type", device)).split(":", 1)[0]


class CpuDevice:
    """The CPU, named without importing torch: what a run on onnxruntime uses (``.type``
    is ``"cpu"`` as on a ``torch.device``; torch code takes ``torch.device(str(d))``)."""

    type = "cpu"
    index = None

    def __str__(self) -> str:
        return "cpu"

    __repr__ = __str__

    def __eq__(self, other) -> bool:
        return str(other) == "cpu"

    def __hash__(self) -> int:
        return hash("cpu")


def may_have_gpu() -> bool:
    """Whether this machine may have a GPU torch would use (an NVIDIA or AMD driver, or
    Apple silicon); False means ``auto`` is surely the CPU, known without importing torch."""
    import platform
    import sys

    if sys.platform == "darwin":
        return platform.machine() == "arm64"
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/kfd", "/dev/dxg"))


def pick_device_light(name: str | None = "auto"):
    """Like :func:`pick_device`, but the CPU (``cpu``, or ``auto`` on a machine without a GPU
    driver) is a :class:`CpuDevice` and torch is not imported for it."""
    name = (name or "auto").strip().lower()
    if name == "cpu" or (name == "auto" and not may_have_gpu()):
        return CpuDevice()
    return pick_device(name)


def torch_device(device):
    """A torch.device for ``device`` (a :class:`CpuDevice`, a name or a torch.device)."""
    import torch

    return device if isinstance(device, torch.device) else torch.device(str(device))


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


def configure_threads(device, workers: int = 0, threads: int | None = None) -> int:
    """On CPU, size torch's intra-op threads to the cores left after ``workers``.

    More threads than free cores is catastrophic (a 2-thread conversion ran
    14x slower than a 1-thread one on a 2-core machine busy with other jobs),
    so this never sets more than ``cores - workers`` (at least 1), and fewer
    when the 1-minute load average shows the cores busy with other work.
    OMP_NUM_THREADS, when set, is an upper bound. ``threads`` (a number the
    user chose) is used as it is. Returns the count.

    The count changes the order of float sums inside the network, so two runs
    with different counts can differ by one 8-bit level on a few pixels: a run
    that must match another byte for byte gives ``threads`` (and the same batch size).
    """
    import torch

    if torch_device(device).type != "cpu":
        return torch.get_num_threads()
    count = thread_count(device, workers, threads)
    torch.set_num_threads(count)
    return torch.get_num_threads()


def thread_count(device="cpu", workers: int = 0, threads: int | None = None) -> int:
    """The thread count :func:`configure_threads` gives the network on the CPU (see there),
    computed without torch (onnxruntime takes it as its intra-op threads)."""
    if threads is not None:
        return max(1, int(threads))
    cores = cpu_cores()
    free = max(1, cores - max(0, int(workers)))
    try:
        busy = int(os.getloadavg()[0] + 0.5)
    except (AttributeError, OSError):
        busy = 0
    free = max(1, min(free, cores - busy))
    env = os.environ.get("OMP_NUM_THREADS")
    if env and env.isdigit():
        free = min(free, max(1, int(env)))
    return free


_MALLOC_TUNED = False


def tune_malloc(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Keep freed large blocks in glibc's heap instead of returning them to the OS.

    Batched tensor code allocates and frees tens of megabytes per operation;
    with glibc's defaults each such block is a fresh mmap whose pages fault in
    again (up to 2x slower measured). This is what
    ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...:glibc.malloc.trim_threshold=...``
    does, applied at run time with ``mallopt``: blocks up to ``mmap_threshold``
    (a 2-megapixel tile's temporaries) are reused from the heap; bigger ones
    (full-resolution planes of huge images) are still mapped and returned, so
    the peak memory for a huge image stays put. No-op (False) off glibc.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    if os.environ.get("COLORBATCH_NO_MALLOC_TUNING"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        ok = libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
        ok = libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold)) == 1 and ok
    except (OSError, AttributeError):
        return False
    _MALLOC_TUNED = ok
    return ok
