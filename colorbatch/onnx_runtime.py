"""The network run by onnxruntime: a model object the :class:`colorbatch.colorizer.Colorizer` uses
in place of the torch module.

An exported model (``colorbatch export``, :mod:`colorbatch.export`) is one ``.onnx`` file
whose metadata props describe it (id, architecture, calibration, hint inputs, the size
multiple). :class:`OnnxModel` reads them and is called like a ``ColorizationNet``:
``model(L01, temperature=..., hints=...)`` on ``(B, 1, H, W)`` L*/100 (H and W multiples
of 32, as the Colorizer pads them) returns ``(B, 2, H, W)`` a*b*/128 as a torch tensor.
The classify head's temperature is baked into the file at export; chroma scaling stays
in the Colorizer. A hint-aware model gets all-zero hint maps when a batch has none (the
network treats all-zero hints as none, as in training).

Which runtime a run uses (:func:`resolve_runtime`): ``torch`` or ``onnxruntime`` when asked
for; ``auto`` (the colorize step's default) is onnxruntime on the CPU, where it starts
without torch (about 2-4 s less to the first output) and runs this network faster, and
torch on a GPU or where onnxruntime or onnx is missing. A run on onnxruntime without
hints never imports torch once the model's export is cached (:mod:`colorbatch.export`,
made once per model). ``COLORBATCH_RUNTIME`` (torch or onnxruntime) sets what ``auto`` means.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

from colorbatch.errors import ColorbatchError

ONNX_FORMAT = "colorbatch-onnx"
INSTALL_HINT = "pip install colorbatch[onnx]"
RUNTIMES = ("auto", "torch", "onnxruntime")
RUNTIME_ENV = "COLORBATCH_RUNTIME"
HINT_INPUTS = ("hint_ab", "hint_mask", "hint_glob")

_META: dict = {}
_LOCK = threading.Lock()


def require_onnxruntime():
    """The onnxruntime module, or one line naming the extra to install."""
    try:
        import onnxruntime
    except ImportError:
        raise ColorbatchError(
            f"the onnxruntime runtime needs the onnxruntime package, which is not installed: {INSTALL_HINT}"
        ) from None
    return onnxruntime


def is_onnx(path) -> bool:
    return path is not None and str(path).lower().endswith(".onnx")


def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise ColorbatchError(f"runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    return runtime


def uses_onnxruntime(path, runtime: str = "torch", device="cpu") -> bool:
    """Whether a model at ``path`` asked for with ``runtime`` runs on onnxruntime."""
    return resolve_runtime(path, runtime, device) == "onnxruntime"


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def resolve_runtime(path, runtime: str = "auto", device="cpu") -> str:
    """``torch`` or ``onnxruntime``: what runs the network for a model at ``path`` asked for
    with ``runtime`` on ``device``. A ``.onnx`` file always runs on onnxruntime; ``auto`` is
    onnxruntime on the CPU when onnxruntime and onnx are installed, else torch
    (``COLORBATCH_RUNTIME`` overrides). The choice depends on nothing else (not on the run's
    size nor on a cache), so a folder never mixes two renderings."""
    import os

    runtime = check_runtime(runtime)
    if is_onnx(path):
        return "onnxruntime"
    if runtime != "auto":
        return runtime
    env = os.environ.get(RUNTIME_ENV, "").strip().lower()
    if env:
        if env not in ("torch", "onnxruntime"):
            raise ColorbatchError(f"{RUNTIME_ENV}={env!r}: use torch or onnxruntime (or unset it for auto)")
        return env
    from colorbatch.device import device_type

    if device_type(device) != "cpu":
        return "torch"
    return "onnxruntime" if installed("onnxruntime") and installed("onnx") else "torch"


def meta_from_props(props: dict, where) -> dict:
    """The metadata props of an exported file -> a dict shaped like a checkpoint's sidecar
    (``id``, ``model``, ``calibration``, ``colorbatch_version``) plus ``onnx`` (how it was exported)."""
    if props.get("colorbatch_format") != ONNX_FORMAT:
        raise ColorbatchError(
            f"model {where}: not a colorbatch ONNX export (no colorbatch_format = {ONNX_FORMAT} in its "
            "metadata); export one with `colorbatch export MODEL --out model.onnx`")
    try:
        arch = json.loads(props.get("model") or "{}")
        cal = json.loads(props.get("calibration") or "null")
        hint_inputs = json.loads(props.get("hint_inputs") or "[]")
    except ValueError as exc:
        raise ColorbatchError(f"model {where}: unreadable metadata ({exc})") from None
    if hints_declared(arch) != bool(hint_inputs):
        raise ColorbatchError(f"model {where}: the metadata's architecture and hint inputs disagree")
    return {
        "format": ONNX_FORMAT,
        "id": props.get("id") or Path(str(where)).stem,
        "model": arch,
        "calibration": cal,
        "colorbatch_version": props.get("colorbatch_version"),
        "onnx": {
            "opset": int(props.get("opset", 0) or 0),
            "precision": props.get("precision", "fp32"),
            "temperature": float(props.get("temperature", 1.0)),
            "multiple": int(props.get("multiple", 32)),
            "hint_inputs": list(hint_inputs),
            "exporter": props.get("exporter"),
            "source_sha256": props.get("source_sha256"),
        },
    }


def hints_declared(arch: dict) -> bool:
    return bool((arch or {}).get("hints"))


def _session(path, ort, device="cpu", threads: int | None = None):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as exc:  # noqa: BLE001 - corrupt file, unsupported op on this provider
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ColorbatchError(f"model {path}: onnxruntime cannot load it ({first})") from None


def read_onnx_meta(path) -> dict:
    """The metadata of an exported ``.onnx`` file (read once per file version)."""
    p = Path(path)
    if not p.is_file():
        raise ColorbatchError(f"model {p}: file not found")
    st = p.stat()
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    with _LOCK:
        hit = _META.get(key)
    if hit is None:
        ort = require_onnxruntime()
        sess = _session(p, ort, threads=1)
        hit = meta_from_props(dict(sess.get_modelmeta().custom_metadata_map), p)
        with _LOCK:
            _META[key] = hit
    return hit


def model_meta(path) -> dict:
    """A model's metadata: a checkpoint's sidecar, or an exported file's props."""
    if is_onnx(path):
        return read_onnx_meta(path)
    from colorbatch.models.checkpoint import read_meta

    return read_meta(path)


def model_id(path) -> str:
    """A model's id, checkpoint or export (an export keeps its checkpoint's id: same weights, same colours)."""
    if is_onnx(path):
        return str(read_onnx_meta(path)["id"])
    from colorbatch.models.checkpoint import model_id as checkpoint_id

    return checkpoint_id(path)


class OnnxModel:
    """An exported model run by onnxruntime, called like the torch network (see the module doc)."""

    def __init__(self, path, device="cpu", threads: int | None = None):
        ort = require_onnxruntime()
        self.path = Path(path)
        self.meta = read_onnx_meta(self.path)
        if not threads:
            from colorbatch.device import thread_count

            threads = thread_count(device)
        self.session = _session(self.path, ort, device, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        info = self.meta["onnx"]
        self.checkpoint_meta = self.meta
        self.arch = self.meta["model"]
        self.multiple = int(info["multiple"])
        self.head = str(self.arch.get("head", "regress"))
        self.accepts_hints = bool(info["hint_inputs"])
        self.temperature = float(info["temperature"])
        self.providers = self.session.get_providers()

    # the Colorizer treats its model as a torch module
    def to(self, *args, **kwargs):
        return self

    def eval(self):
        return self

    def __call__(self, L01, temperature: float | None = None, hints=None):
        """(B,1,H,W) L*/100 -> (B,2,H,W) a*b*/128: a torch tensor on L01's device for a torch
        input, a numpy array for a numpy input (the torch-free path: no hints)."""
        import numpy as np

        if self.head == "classify" and temperature is not None and abs(float(temperature) - self.temperature) > 1e-6:
            raise ColorbatchError(
                f"model {self.path} was exported with temperature {self.temperature:g} baked in; "
                f"re-export it to run at {float(temperature):g}")
        B, _, H, W = L01.shape
        if H % self.multiple or W % self.multiple:
            raise ValueError(f"input {H} x {W}: height and width must be multiples of {self.multiple}")
        plain = isinstance(L01, np.ndarray)
        feeds = {"L01": np.ascontiguousarray(L01, dtype=np.float32) if plain else _numpy(L01)}
        if self.accepts_hints:
            h = hints
            feeds["hint_ab"] = _numpy(h.ab) if h is not None and h.ab is not None else \
                np.zeros((B, 2, H, W), np.float32)
            feeds["hint_mask"] = _numpy(h.mask) if h is not None and h.mask is not None else \
                np.zeros((B, 1, H, W), np.float32)
            from colorbatch.models.hints import GLOBAL_DIM

            feeds["hint_glob"] = _numpy(h.glob) if h is not None and h.glob is not None else \
                np.zeros((B, GLOBAL_DIM), np.float32)
        elif hints is not None and not hints.empty:
            raise ColorbatchError(f"model {self.path} takes no colour hints (it was exported without hint inputs)")
        out = self.session.run(["ab"], feeds)[0]
        if plain:
            return out
        import torch

        return torch.from_numpy(out).to(L01.device)

    forward = __call__


def _numpy(t):
    import numpy as np

    return np.ascontiguousarray(t.detach().float().cpu().numpy(), dtype=np.float32)
