"""The colorization model: encoders (a plugin hook), a cheap U-Net decoder, checkpoints.

``build_model(encoder="efficientnet-lite0", encoder_weights="imagenet",
freeze_encoder=True, pm=None, **decoder_opts)`` returns an ``nn.Module`` whose
``forward(L01)`` maps ``(B,1,H,W)`` L*/100 to ``(B,2,H,W)`` a*b*/128.
Encoders are looked up through the ``colorbatch_register_encoders`` hook, so a
plugin can add one. torch is imported only when a model is built.
"""
from __future__ import annotations

from colorbatch.errors import ColorbatchError
from colorbatch.models.encoders import EncoderDef

DEFAULT_ENCODER = "efficientnet-lite0"
DECODER_OPTIONS = ("widths", "out_stride", "head", "hints", "context")
HEADS = ("regress", "classify")

__all__ = ["EncoderDef", "build_model", "model_name", "DEFAULT_ENCODER", "available_encoders"]


def available_encoders(pm=None) -> dict:
    """name -> EncoderDef registered through the plugins of ``pm``.

    Without ``pm``: those of the process-wide manager once the host has built one
    (the CLI and the test fixtures do), else the two built-in encoders.
    """
    from colorbatch import registry

    pm = pm if pm is not None else registry.process_manager()
    if pm is None:
        from colorbatch.models import encoders

        return {e.name: e for e in (encoders.RESNET50, encoders.EFFICIENTNET_LITE0, encoders.EFFICIENTNET_LITE2)}
    return registry.encoders(pm)


def _encoder_name(name: str) -> str:
    # accept model names like "resnet50-unet"
    return name[: -len("-unet")] if name.endswith("-unet") else name


def model_name(encoder: str) -> str:
    return f"{_encoder_name(encoder)}-unet"


def build_model(
    encoder: str = DEFAULT_ENCODER,
    encoder_weights: str | None = "imagenet",
    freeze_encoder: bool = True,
    pm=None,
    **decoder_opts,
):
    """Build the colorization network (see the module docstring)."""
    from colorbatch.messages import did_you_mean

    unknown = [k for k in decoder_opts if k not in DECODER_OPTIONS]
    if unknown:
        raise ColorbatchError(f"build_model: unknown decoder option {unknown[0]!r} (known: {', '.join(DECODER_OPTIONS)})")
    name = _encoder_name(encoder)
    encoders = available_encoders(pm)
    if name not in encoders:
        hint = did_you_mean(name, list(encoders))
        raise ColorbatchError(
            f"unknown encoder {encoder!r}{hint}; available: {', '.join(sorted(encoders))}"
        )
    edef = encoders[name]
    if edef.build is None:
        raise ColorbatchError(f"encoder {name!r} (from {edef.plugin or '?'}) has no build function")
    weights = "none" if encoder_weights in (None, "") else str(encoder_weights)
    enc = edef.build(weights, bool(freeze_encoder))
    for attr in ("channels", "strides"):
        if not getattr(enc, attr, None):
            raise ColorbatchError(f"encoder {name!r} (from {edef.plugin or '?'}) does not declare {attr}")
    from colorbatch.models.decoder import DEFAULT_WIDTHS, build_network

    widths = tuple(int(w) for w in decoder_opts.get("widths") or DEFAULT_WIDTHS)
    out_stride = int(decoder_opts.get("out_stride") or 2)
    head = str(decoder_opts.get("head") or "regress")
    if head not in HEADS:
        raise ColorbatchError(f"build_model: unknown head {head!r} (known: {', '.join(HEADS)})")
    arch = {
        "name": model_name(name),
        "encoder": name,
        "freeze_encoder": bool(freeze_encoder),
        "widths": list(widths),
        "out_stride": out_stride,
        "head": head,
        **({"hints": True} if decoder_opts.get("hints") else {}),
        **({"context": True} if decoder_opts.get("context") else {}),
        "encoder_weights": weights if weights in ("imagenet", "none") else "file",
    }
    try:
        return build_network(enc, arch, widths, out_stride)
    except ValueError as exc:
        raise ColorbatchError(f"build_model: {exc}") from None
