"""Inference: the network on L* at ``size``, a*b* upsampled onto the full-resolution L*.

:class:`Colorizer` has one batch API, :meth:`Colorizer.predict_small` (L*/100 at
network size -> a*b*), and one recombination, :meth:`Colorizer.recombine`; the
``colorize`` step calls both on a stream, with decoding in DataLoader worker
processes (:func:`prepare_item`, through :func:`colorbatch.images.decode_L`), and
the library calls (``predict_ab`` / ``compose`` / ``colorize``) are built on them.

How an image is processed:

1. full-resolution L* (from a gray or colour file) is kept as uint16
   (``L * 655.35``, error < 0.001 L*), 2 bytes per pixel;
2. L*/100 is resized with antialiasing so the long side is ``size`` (aspect kept);
   images of a batch are padded (edge values) to a common multiple of 32;
3. the network predicts a*b*/128 at network resolution; the padding is cropped;
4. a*b* are upsampled bilinearly to the original resolution and recombined with
   the original L* in row tiles (so memory grows with one image, not a batch of
   them), converted to sRGB and quantised to uint8 on the device.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from colorbatch.images import L_SCALE, quantize_L  # noqa: F401 - re-exported
from colorbatch.prepare import (  # noqa: F401 - re-exported
    as_numpy,
    net_shape,
    pad_batch,
    pad_batch_np,
    prepare_item,
    resize_L01,
    resize_L01_np,
    unpack_L,
    unpack_rgb,
)
from colorbatch.recombine import (  # noqa: F401 - re-exported
    TILE_PIXELS,
    compose_full,
    u16_tensor,
    upsample_rows,
)

_MODELS: dict = {}
_LOCK = threading.Lock()



def load_model(path, device, runtime: str = "torch", threads: int | None = None):
    """A checkpoint loaded once per process, device and runtime -> (model, meta, model_id).

    ``runtime="onnxruntime"`` (or a ``.onnx`` file, see :mod:`colorbatch.export`) gives an
    :class:`colorbatch.onnx_runtime.OnnxModel` (with ``threads`` intra-op threads); a
    checkpoint is exported once into the cache. ``auto``: see
    :func:`colorbatch.onnx_runtime.resolve_runtime`."""
    from colorbatch.onnx_runtime import uses_onnxruntime

    if uses_onnxruntime(path, runtime, device):
        return _load_onnx(path, device, threads)
    import torch

    from colorbatch.models.checkpoint import load_checkpoint, model_id
    p = Path(path).resolve()
    st = p.stat()
    from colorbatch.models.checkpoint import json_path

    try:  # the sidecar too: calibration may be added to a checkpoint after training
        side = json_path(p).stat().st_mtime_ns
    except OSError:
        side = 0
    key = (str(p), st.st_mtime_ns, st.st_size, side, str(device))
    with _LOCK:
        hit = _MODELS.get(key)
        if hit is None:
            model, meta = load_checkpoint(p, device="cpu")
            model = model.to(device).eval()
            if torch.device(device).type == "cpu":
                model = model.to(memory_format=torch.channels_last)
            hit = (model, meta, model_id(p))
            _MODELS[key] = hit
    return hit


def _load_onnx(path, device, threads: int | None = None):
    from colorbatch.onnx_runtime import OnnxModel, is_onnx, require_onnxruntime

    require_onnxruntime()
    p = Path(path).resolve()
    if not is_onnx(p):
        from colorbatch.export import cached_export

        p = cached_export(p)
    st = p.stat()
    key = (str(p), st.st_mtime_ns, st.st_size, "onnxruntime", str(device), threads)
    with _LOCK:
        hit = _MODELS.get(key)
        if hit is None:
            model = OnnxModel(p, device, threads)
            hit = _MODELS[key] = (model, model.meta, str(model.meta["id"]))
    return hit


def chroma_model_id(model_id: str, chroma) -> str:
    """The id that outputs and manifests record for a model used at ``chroma`` (the one place the
    suffix is added): a chroma other than 1 makes other outputs, so ``m@1234`` becomes ``m@1234@chroma0.8``."""
    from colorbatch.models.checkpoint import colour_strength

    return model_id + colour_strength(None, chroma)[2]


class Colorizer:
    """Colorize L* arrays with a checkpoint.

    ``Colorizer(model_path_or_None, device="auto", size=256, batch_size=8)``;
    ``None`` discovers the model (see :func:`colorbatch.models.checkpoint.discover_model`).
    ``model`` may also be an ``nn.Module`` (tests, benchmarks). ``chroma="auto"``
    uses the colour strength calibrated into the checkpoint; a number scales a*b*.
    ``runtime="onnxruntime"`` (or a ``.onnx`` model) runs the network on onnxruntime
    (:mod:`colorbatch.onnx_runtime`); everything else is the same. ``runtime="auto"`` is
    onnxruntime on the CPU where it is installed (see
    :func:`colorbatch.onnx_runtime.resolve_runtime`): then an image without hints goes
    from L* to sRGB without importing torch. ``threads``: onnxruntime's intra-op threads
    (torch's are set by the caller, :func:`colorbatch.device.configure_threads`).
    """

    def __init__(self, model=None, device="auto", size: int = 256, batch_size: int = 8, chroma="auto",
                 runtime: str = "torch", threads: int | None = None):
        from colorbatch.device import pick_device_light, torch_device

        self.device = pick_device_light(device) if not hasattr(device, "type") else device
        self.size = int(size)
        self.batch_size = max(1, int(batch_size))
        if model is None or isinstance(model, (str, Path)):
            from colorbatch.models.checkpoint import discover_model
            from colorbatch.onnx_runtime import resolve_runtime

            self.path = discover_model(model)
            # what runs the network: recorded in each output's provenance beside the model id
            self.runtime = resolve_runtime(self.path, runtime, self.device)
            if self.runtime == "torch":
                self.device = torch_device(self.device)
            self.model, self.meta, self.model_id = load_model(self.path, self.device, self.runtime, threads)
        else:
            import torch

            self.device = torch_device(self.device)
            self.path = None
            self.runtime = "torch"
            self.model = model.to(self.device).eval()
            if self.device.type == "cpu":
                self.model = self.model.to(memory_format=torch.channels_last)
            self.meta = getattr(model, "checkpoint_meta", {}) or {}
            self.model_id = str(self.meta.get("id") or getattr(model, "arch", {}).get("name", "model"))
        self.multiple = int(getattr(self.model, "multiple", 32))
        # colour strength: "auto" = the checkpoint's calibration; a number overrides the
        # chroma scale and the id says so, since the outputs differ
        from colorbatch.models.checkpoint import colour_strength

        self.temperature, self.chroma, _ = colour_strength(self.meta, chroma)
        self.model_id = chroma_model_id(self.model_id, chroma)
        self.classify = getattr(self.model, "head", "regress") == "classify"

    # ---- the network ------------------------------------------------------
    # ---- hints -------------------------------------------------------------
    @property
    def accepts_hints(self) -> bool:
        """Whether the model has hint inputs (see :mod:`colorbatch.models.hints`)."""
        return bool(getattr(self.model, "accepts_hints", False))

    def check_hints(self) -> None:
        """Refuse hints with one line when the model has no hint inputs."""
        if not self.accepts_hints:
            from colorbatch.errors import ColorbatchError

            raise ColorbatchError(
                f"model {self.model_id} takes no colour hints: use a hint-aware model (the shipped "
                "default, or one trained with hints = true), or drop --hints/--reference")

    def net_hw(self, shape) -> tuple[int, int]:
        """The network size (h, w) of an image of ``shape`` (H, W): what hints are built at."""
        return net_shape(int(shape[0]), int(shape[1]), self.size)

    # ---- the network ------------------------------------------------------
    def forward(self, batch, hints=None):
        """(B,1,H,W) L*/100 on any device -> (B,2,H,W) a*b*/128 float32 on the device.

        ``hints``: a batch :class:`colorbatch.models.hints.Hints` of the same size, or None.
        On CUDA out-of-memory the batch is halved and retried (and later batches
        use the smaller size).
        """
        import torch

        from colorbatch.device import autocast, torch_device

        dev = torch_device(self.device)
        x = batch.to(dev, non_blocking=True)
        if dev.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        kw = {} if hints is None else {"hints": hints.to(dev)}
        try:
            with torch.inference_mode(), autocast(dev):
                if self.classify:
                    return self.model(x, temperature=self.temperature, **kw).float()
                return self.model(x, **kw).float()
        except torch.cuda.OutOfMemoryError:
            if x.shape[0] == 1:
                raise
            torch.cuda.empty_cache()
            half = x.shape[0] // 2
            self.batch_size = max(1, min(self.batch_size, half))
            parts = [None, None] if hints is None else [_slice_hints(hints, 0, half), _slice_hints(hints, half, None)]
            return torch.cat((self.forward(x[:half], parts[0]), self.forward(x[half:], parts[1])), dim=0)

    def predict_small(self, smalls, hints=None):
        """List of (1,h,w) L*/100 tensors -> list of (2,h,w) a*b*/128 tensors (on the device).

        ``hints``: None, or per image a :class:`colorbatch.models.hints.Hints` at its
        network size (or None); hinted images go through the hint inputs and then
        :func:`colorbatch.models.hints.refine`. A model without hint inputs refuses them.
        """
        if hints is None and self.runtime == "onnxruntime":
            return self._predict_np(smalls)
        import torch

        from colorbatch.models.hints import refine, stack

        smalls = [torch.from_numpy(t) if isinstance(t, np.ndarray) else t for t in smalls]
        out = []
        for i in range(0, len(smalls), self.batch_size):
            chunk = smalls[i : i + self.batch_size]
            hs = list(hints[i : i + self.batch_size]) if hints is not None else [None] * len(chunk)
            x = pad_batch(chunk, self.multiple)
            given = stack(hs, x.shape[-2:]) if hints is not None else None
            if given is not None:
                self.check_hints()
            pred = self.forward(x, given)
            for j, t in enumerate(chunk):
                p = pred[j, :, : t.shape[-2], : t.shape[-1]]
                h = hs[j]
                scale = self.chroma if h is None or h.chroma is None else float(h.chroma)
                if scale != 1.0:
                    p = (p * scale).clamp_(-1.0, 1.0)
                if h is not None and not h.empty:
                    p = refine(p[None].float(), t[0].to(p.device) * 100.0, h)[0]
                out.append(p)
        return out

    def _predict_np(self, smalls):
        """:meth:`predict_small` on onnxruntime without hints, in numpy (torch is not imported):
        (1,h,w) arrays (or CPU tensors) -> (2,h,w) float32 arrays of a*b*/128."""
        out = []
        for i in range(0, len(smalls), self.batch_size):
            chunk = [as_numpy(t) for t in smalls[i : i + self.batch_size]]
            pred = self.model(pad_batch_np(chunk, self.multiple),
                              temperature=self.temperature if self.classify else None)
            for j, t in enumerate(chunk):
                p = pred[j, :, : t.shape[-2], : t.shape[-1]]
                if self.chroma != 1.0:
                    p = np.clip(p * np.float32(self.chroma), -1.0, 1.0)
                out.append(np.ascontiguousarray(p, dtype=np.float32))
        return out

    # ---- one image, many hints (the studio) ---------------------------------
    @property
    def can_split(self) -> bool:
        """Whether :meth:`encode` / :meth:`decode` work (a torch model with encoder and decoder)."""
        return hasattr(self.model, "encoder") and hasattr(self.model, "decoder")

    def encode(self, small):
        """(1,h,w) L*/100 at network size -> the encoder's features (kept by a caller that
        re-colorizes one image with changing hints: then a new hint costs only the decoder)."""
        import torch

        from colorbatch.device import autocast

        x = pad_batch([small], self.multiple).to(self.device)  # padded as predict_small pads
        if self.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(self.device):
            return [f.clone() for f in self.model.encoder(x)], tuple(x.shape[-2:])

    def decode(self, encoded, small, hints=None):
        """Features from :meth:`encode` (+ the same ``small``, optional :class:`Hints`) ->
        (2,h,w) a*b*/128, exactly what :meth:`predict_small` gives for that image."""
        import torch

        from colorbatch.device import autocast
        from colorbatch.models.hints import refine, stack

        feats, padded = encoded
        h, w = small.shape[-2:]
        given = stack([hints], padded) if hints is not None else None
        if given is not None:
            self.check_hints()
            given = given.to(self.device)
        with torch.inference_mode(), autocast(self.device):
            if self.classify:
                ab = self.model.decoder(feats, padded, self.temperature, given).float()
            else:
                ab = self.model.decoder(feats, padded, 1.0, given).float()
            scale = self.chroma if hints is None or hints.chroma is None else float(hints.chroma)
            if scale != 1.0:
                ab = (ab * scale).clamp_(-1.0, 1.0)
            p = ab[0, :, :h, :w]
            if hints is not None and not hints.empty:
                p = refine(p[None], small[0].to(p.device) * 100.0, hints)[0]
        return p

    # ---- library API (contract) ------------------------------------------
    def predict_ab(self, Ls, hints=None):
        """List of H x W float32 L* arrays -> list of H x W x 2 float32 a*b* at full resolution.

        ``hints``: None, or per image a :class:`colorbatch.models.hints.Hints` built at
        :meth:`net_hw` (see :func:`colorbatch.models.hints.for_image`), or None."""
        import torch

        smalls = [self.resize(np.asarray(L, dtype=np.float32), net_shape(*L.shape, self.size)) for L in Ls]
        preds = self.predict_small(smalls, hints)
        out = []
        for L, p in zip(Ls, preds):
            p = torch.from_numpy(p) if isinstance(p, np.ndarray) else p
            H, W = L.shape
            ab = np.empty((H, W, 2), dtype=np.float32)
            rows = max(1, TILE_PIXELS // max(1, W))
            for y0 in range(0, H, rows):
                y1 = min(H, y0 + rows)
                ab[y0:y1] = (upsample_rows(p.float() * 128.0, H, W, y0, y1)).permute(1, 2, 0).cpu().numpy()
            out.append(ab)
        return out

    def compose(self, L, ab) -> np.ndarray:
        """uint8 H x W x 3 sRGB from full-resolution L* and a*b* (recombined on the device)."""
        import torch

        from colorbatch.color import lab_to_rgb_keep_L
        from colorbatch.device import torch_device

        dev = torch_device(self.device)
        L = np.asarray(L, dtype=np.float32)
        ab = np.asarray(ab, dtype=np.float32)
        H, W = L.shape
        rgb = np.empty((H, W, 3), dtype=np.uint8)
        rows = max(1, TILE_PIXELS // max(1, W))
        for y0 in range(0, H, rows):
            y1 = min(H, y0 + rows)
            Lt = torch.from_numpy(np.ascontiguousarray(L[y0:y1])).to(dev)
            abt = torch.from_numpy(np.ascontiguousarray(ab[y0:y1])).to(dev).permute(2, 0, 1)
            out = lab_to_rgb_keep_L(torch.cat((Lt[None], abt), 0)).mul_(255.0).round_().to(torch.uint8)
            rgb[y0:y1] = out.permute(1, 2, 0).cpu().numpy()
        return rgb

    def recombine(self, L, pred, want_ab: bool = False):
        """Full-resolution L* (float32, or uint16 quantised) and one prediction of
        :meth:`predict_small` -> (uint8 H x W x 3 sRGB, H x W x 2 a*b* when ``want_ab``, else None)."""
        if isinstance(pred, np.ndarray):  # onnxruntime: the kernels need no torch
            return compose_full(L, pred, self.device, want_ab=want_ab)
        import torch

        with torch.inference_mode():
            return compose_full(L, pred, self.device, want_ab=want_ab)

    def colorize(self, L) -> np.ndarray:
        """One L* array -> uint8 RGB at the same resolution."""
        L = np.asarray(L, dtype=np.float32)
        return self.recombine(L, self.predict_small([self.resize(L, net_shape(*L.shape, self.size))])[0])[0]

    def resize(self, L, shape):
        """L* -> (1, h, w) L*/100 at network size, as this colorizer's runtime takes it:
        :func:`resize_L01_np` (a numpy array) on onnxruntime, :func:`resize_L01` (a tensor) on torch."""
        return resize_L01_np(L, shape) if self.runtime == "onnxruntime" else resize_L01(L, shape)


def _slice_hints(h, start, stop):
    from colorbatch.models.hints import Hints

    def cut(t):
        return None if t is None else t[start:stop]

    return Hints(cut(h.ab), cut(h.mask), cut(h.glob))
