"""Export a colorbatch model to ONNX, and check that the export computes the same a*b*.

The exported graph
------------------
Inputs  ``L01`` (batch, 1, height, width) float32 L*/100; height and width any multiples
        of 32 (the encoders' largest stride; the ``multiple`` metadata prop says so), batch
        any size. A hint-aware model (``accepts_hints``) has three more inputs, the
        :class:`colorbatch.models.hints.Hints` maps: ``hint_ab`` (batch, 2, height, width)
        a*b*/128, ``hint_mask`` (batch, 1, height, width) 0/1 and ``hint_glob``
        (batch, 66) the global hint; all zeros = no hint.
Output  ``ab`` (batch, 2, height, width) float32 a*b*/128, before chroma scaling (the
        ``calibration`` prop holds the chroma to multiply by; clamp to [-1, 1]).

The classify head's temperature (the annealed mean) is **baked in** from the
checkpoint's calibration (the ``temperature`` prop); re-export to change it. The
metadata props also carry the id (the checkpoint's: same weights, same colours), the
architecture, the encoder, the opset, the precision and the colorbatch version.

Exporters: ``torchscript`` (the default, a trace: seconds) or ``dynamo``
(``torch.export``: minutes on this network, its symbolic shapes are costly; opset 18 at
least; models without hint inputs only). Both give dynamic batch, height and width. The hint maps are pooled per decoder stage with an
adaptive average pool whose output size follows the input; for the export it is the
fixed average pool it equals on multiples of 32 (:func:`_exact_pooling`).

:func:`verify` runs torch and onnxruntime on the same inputs (two sizes, two batch
sizes through one file) and reports the largest a*b* difference.
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from colorbatch.errors import ColorbatchError, ExportError
from colorbatch.onnx_runtime import HINT_INPUTS, ONNX_FORMAT, OnnxModel

DEFAULT_OPSET = 17
EXPORTERS = ("torchscript", "dynamo")
MULTIPLE = 32
TOLERANCE = 1e-3  # a*b*/128
VERIFY_SHAPES = ((1, 256, 192), (2, 320, 448))


@dataclass
class Exported:
    path: Path
    seconds: float
    props: dict
    meta: dict = field(default_factory=dict)


def _load(model):
    """A checkpoint path (or None: the discovered default) or a built network -> (net, meta)."""
    if model is None or isinstance(model, (str, Path)):
        from colorbatch.models.checkpoint import discover_model, load_checkpoint

        net, meta = load_checkpoint(discover_model(model), device="cpu")
        return net, meta
    return model.eval(), dict(getattr(model, "checkpoint_meta", {}) or {})


def baked_temperature(net, meta) -> float:
    """The temperature the export bakes in: the calibrated one for a classify head, else 1."""
    from colorbatch.models.checkpoint import colour_strength

    return colour_strength(meta, "auto")[0] if getattr(net, "head", "regress") == "classify" else 1.0


def _wrapper(net, temperature: float, hints: bool, fp16: bool):
    import torch

    from colorbatch.models.hints import Hints

    class Exportable(torch.nn.Module):
        """The network on inputs that are multiples of 32, hints as separate tensors."""

        def __init__(self):
            super().__init__()
            self.net = net
            if fp16:  # half precision after the gray stem (its L* -> gray curve stays float32)
                net.half()
                net.encoder.stem.float()
                self.hook = net.encoder.stem.register_forward_hook(lambda mod, inp, out: out.half())

        def forward(self, L01, hint_ab=None, hint_mask=None, hint_glob=None):
            dt = torch.float16 if fp16 else torch.float32
            h = Hints(hint_ab.to(dt), hint_mask.to(dt), hint_glob.to(dt)) if hints else None
            ab = self.net.decoder(self.net.encoder(L01), L01.shape[-2:], temperature, h)
            return ab.float()

    return Exportable().eval()


@contextlib.contextmanager
def _exact_pooling():
    """During the export, adaptive average pooling to an exact divisor of the input size is the
    plain average pool it equals (ONNX AveragePool; an adaptive pool with a size that follows
    the input has no ONNX form)."""
    import torch.nn.functional as F

    adaptive = F.adaptive_avg_pool2d

    def pool(x, size):
        H, W = int(x.shape[-2]), int(x.shape[-1])
        h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if h and w and H % h == 0 and W % w == 0:
            return F.avg_pool2d(x, (H // h, W // w))
        return adaptive(x, size)

    F.adaptive_avg_pool2d = pool
    try:
        yield
    finally:
        F.adaptive_avg_pool2d = adaptive


def sample_inputs(batch: int, height: int, width: int, hints: bool, seed: int = 0, dtype=None):
    """Photo-like inputs: smooth random L*/100 (a coarse field upsampled) and, for a hint-aware
    model, a few hinted pixels and a global hint."""
    import torch
    import torch.nn.functional as F

    from colorbatch.models.hints import GLOBAL_DIM

    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 1, max(1, height // 16), max(1, width // 16), generator=g)
    L = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    L = (L + 0.05 * torch.rand(batch, 1, height, width, generator=g)).clamp(0, 1)
    if not hints:
        return (L,)
    mask = (torch.rand(batch, 1, height, width, generator=g) > 0.995).float()
    ab = (torch.rand(batch, 2, height, width, generator=g) * 1.2 - 0.6) * mask
    glob = torch.rand(batch, GLOBAL_DIM, generator=g)
    glob[:, :-2] /= glob[:, :-2].sum(1, keepdim=True)
    return (L, ab, mask, glob)


def _props(net, meta, temperature, opset, fp16, exporter, hints) -> dict:
    import torch

    from colorbatch import __version__

    arch = dict(getattr(net, "arch", {}) or meta.get("model") or {})
    return {
        "colorbatch_format": ONNX_FORMAT,
        "format_version": "1",
        "id": str(meta.get("id") or arch.get("name", "model")),
        "encoder": str(arch.get("encoder", "")),
        "head": str(arch.get("head", "regress")),
        "model": json.dumps(arch, sort_keys=True),
        "calibration": json.dumps(meta.get("calibration"), sort_keys=True, default=str),
        "temperature": repr(float(temperature)),
        "temperature_baked": "true",
        "multiple": str(MULTIPLE),
        "inputs": json.dumps(["L01", *(HINT_INPUTS if hints else ())]),
        "hint_inputs": json.dumps(list(HINT_INPUTS) if hints else []),
        "shapes": (f"L01 (batch, 1, height, width) L*/100, height and width multiples of {MULTIPLE}; "
                   + ("hint_ab (batch, 2, h, w) a*b*/128, hint_mask (batch, 1, h, w), hint_glob (batch, 66), "
                      "all zero = no hint; " if hints else "")
                   + "ab (batch, 2, height, width) a*b*/128 before chroma scaling"),
        "opset": str(int(opset)),
        "precision": "fp16" if fp16 else "fp32",
        "exporter": exporter,
        "colorbatch_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "source_sha256": str(meta.get("sha256") or ""),
    }


def _write_props(path: Path, props: dict) -> None:
    try:
        import onnx
    except ImportError:
        from colorbatch.onnx_runtime import INSTALL_HINT

        raise ColorbatchError(f"export needs the onnx package, which is not installed: {INSTALL_HINT}") from None
    m = onnx.load(str(path))
    del m.metadata_props[:]
    for k, v in props.items():
        m.metadata_props.add(key=k, value=v)
    m.producer_name = "colorbatch"
    m.doc_string = f"colorbatch model {props['id']} ({props['encoder']}, {props['head']} head): {props['shapes']}"
    onnx.save(m, str(path))


def export_onnx(model=None, out="model.onnx", *, opset: int = DEFAULT_OPSET, fp16: bool = False,
                exporter: str = "torchscript") -> Exported:
    """Export ``model`` (a checkpoint path, None for the default model, or a built network) to ``out``."""
    import warnings

    import torch

    from colorbatch.atomic import atomic_write

    if exporter not in EXPORTERS:
        raise ColorbatchError(f"exporter {exporter!r}: use one of {', '.join(EXPORTERS)}")
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ColorbatchError(f"--out {out}: the file name must end in .onnx")
    net, meta = _load(model)
    if getattr(net, "multiple", MULTIPLE) != MULTIPLE:
        raise ExportError(f"model: stride {net.multiple} is not {MULTIPLE}; export supports 32")
    hints = bool(getattr(net, "accepts_hints", False))
    if exporter == "dynamo":
        if hints:
            raise ColorbatchError("--exporter dynamo: a model with hint inputs exports with the torchscript exporter "
                                  "(its per-stage hint pooling has no symbolic form)")
        opset = max(int(opset), 18)  # the dynamo exporter's lowest
    temperature = baked_temperature(net, meta)
    wrapper = _wrapper(net, temperature, hints, fp16)
    names = ["L01", *(HINT_INPUTS if hints else ())]
    args = sample_inputs(2, 256, 192, hints)
    props = _props(net, meta, temperature, opset, fp16, exporter, hints)
    t0 = time.perf_counter()

    def write(tmp):
        spatial = {0: "batch", 2: "height", 3: "width"}
        with torch.no_grad(), _exact_pooling(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if exporter == "torchscript":
                axes = {n: ({0: "batch"} if n == "hint_glob" else spatial) for n in names + ["ab"]}
                torch.onnx.export(wrapper, args, tmp, dynamo=False, opset_version=opset, input_names=names,
                                  output_names=["ab"], dynamic_axes=axes, do_constant_folding=True)
            else:
                from torch.export import Dim

                b = Dim("batch", min=1, max=4096)
                hh, ww = Dim("h32", min=1, max=512), Dim("w32", min=1, max=512)
                sp = {0: b, 2: MULTIPLE * hh, 3: MULTIPLE * ww}
                ds = {n: ({0: b} if n == "hint_glob" else sp) for n in names}
                torch.onnx.export(wrapper, args, tmp, dynamo=True, opset_version=opset, input_names=names,
                                  output_names=["ab"], dynamic_shapes=ds, verbose=False)
        _write_props(Path(tmp), props)

    try:
        atomic_write(out, write)
    except ColorbatchError:
        raise
    except Exception as exc:  # noqa: BLE001 - an op the exporter cannot translate
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ExportError(f"export of {props['id']} to ONNX failed ({type(exc).__name__}: {first})") from None
    finally:
        if fp16:
            wrapper.hook.remove()
            net.float()
    from colorbatch.onnx_runtime import meta_from_props

    return Exported(out, time.perf_counter() - t0, props, meta_from_props(props, out))


def verify(model, onnx_path, shapes=VERIFY_SHAPES, seed: int = 0) -> dict:
    """Run torch and onnxruntime on the same sample inputs -> ``{"max_abs": ..., "cases": [...]}``
    (the largest a*b*/128 difference over every case; ``shapes`` are (batch, height, width))."""
    import torch

    from colorbatch.models.hints import Hints

    net, meta = _load(model)
    ort_model = OnnxModel(onnx_path, "cpu")
    temperature = ort_model.temperature
    cases = []
    for i, (b, h, w) in enumerate(shapes):
        x = sample_inputs(b, h, w, ort_model.accepts_hints, seed + i)
        hints = Hints(*x[1:]) if len(x) > 1 else None
        with torch.inference_mode():
            ref = net(x[0], temperature=temperature, hints=hints).float()
        got = ort_model(x[0], temperature=temperature, hints=hints)
        cases.append({"batch": b, "height": h, "width": w, "max_abs": float((got - ref).abs().max())})
    return {"max_abs": max(c["max_abs"] for c in cases), "cases": cases, "hints": ort_model.accepts_hints}


def cached_export_path(checkpoint) -> Path:
    """Where :func:`cached_export` keeps the export of ``checkpoint`` (reads only its JSON and
    the weights file's size and time: a changed file gets a new export, even under the same id)."""
    import hashlib

    from colorbatch.models.checkpoint import cache_dir, colour_strength, read_meta

    meta = read_meta(checkpoint)
    t = colour_strength(meta, "auto")[0]
    st = Path(checkpoint).stat()
    stamp = hashlib.sha256(f"{Path(checkpoint).resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:10]
    return cache_dir() / "onnx" / f"{meta.get('id') or Path(checkpoint).stem}-T{t:g}-{stamp}.onnx"


def cached_export(checkpoint) -> Path:
    """The ONNX export of a checkpoint, made once and kept in the cache (``<cache>/onnx/``):
    what ``--runtime onnxruntime`` (and ``auto`` on the CPU) runs for a ``.safetensors`` model."""
    out = cached_export_path(checkpoint)
    if not out.is_file():
        export_onnx(checkpoint, out)
    return out
