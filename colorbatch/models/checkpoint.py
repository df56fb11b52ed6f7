"""Checkpoints: ``model.safetensors`` + ``model.json``; discovery of the model to use.

The ``.safetensors`` file holds the full state dict (encoder included, so using
a checkpoint never needs the ImageNet weights). The JSON beside it holds::

    {"format": "colorbatch-checkpoint", "format_version": 1, "id": "...",
     "model": {"name", "encoder", "widths", "out_stride", ...},
     "config": {...}, "training": {...} | null, "colorbatch_version": "...",
     "tensors": N, "created": "..."}

Loading rebuilds the architecture from ``model`` and checks every tensor name
and shape; a wrong, corrupt or foreign file fails with one line. Nothing is
ever unpickled.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
from pathlib import Path

from colorbatch.atomic import atomic_write
from colorbatch.errors import ColorbatchError

FORMAT = "colorbatch-checkpoint"
FORMAT_VERSION = 1
ENV_MODEL = "COLORBATCH_MODEL"
ENV_CACHE = "COLORBATCH_CACHE"

HOW_TO_GET_ONE = (
    "train one with `colorbatch run recipes/quickstart.toml` (it is saved to {models}), "
    "or pass --model PATH.safetensors, or set COLORBATCH_MODEL"
)


def cache_dir() -> Path:
    """$COLORBATCH_CACHE, else $XDG_CACHE_HOME/colorbatch, else ~/.cache/colorbatch."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "colorbatch"
    return Path.home() / ".cache" / "colorbatch"


def models_dir() -> Path:
    return cache_dir() / "models"


def json_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(path, model, config: dict | None = None, training: dict | None = None,
                    omit_encoder: bool = False) -> Path:
    """Write ``path`` (.safetensors) and ``path.with_suffix('.json')`` atomically.

    ``omit_encoder``: leave out the tensors of a frozen encoder with ImageNet weights
    (``"encoder_tensors": "weights-package"``): loading rebuilds them from the
    installed weights package, so a shipped model holds only what it learned.
    """
    from colorbatch import __version__

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    inner = getattr(model, "module", model)  # DDP / DataParallel wrappers
    inner = getattr(inner, "_orig_mod", inner)  # torch.compile
    arch = getattr(inner, "arch", None)
    if not isinstance(arch, dict):
        raise ColorbatchError("save_checkpoint: the model has no `arch` (build it with colorbatch.models.build_model)")
    from safetensors.torch import save_file

    if omit_encoder and not (arch.get("freeze_encoder") and arch.get("encoder_weights") == "imagenet"):
        raise ColorbatchError("save_checkpoint: only a frozen encoder with ImageNet weights can be left out")
    state = {k: v.detach().to("cpu").contiguous() for k, v in inner.state_dict().items()
             if not (omit_encoder and k.startswith("encoder."))}
    # tensors that share memory must be separate for safetensors
    state = {k: v.clone() for k, v in state.items()}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata={"format": FORMAT}))
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "id": f"{arch['name']}-{_file_sha(path)[:12]}",
        "model": arch,
        "config": config or {},
        "training": training,
        "colorbatch_version": __version__,
        "tensors": len(state),
        "encoder_tensors": "weights-package" if omit_encoder else "included",
        "sha256": _file_sha(path),
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    text = json.dumps(meta, indent=2, default=str) + "\n"
    atomic_write(json_path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path


def colour_strength(meta: dict | None, chroma="auto") -> tuple[float, float, str]:
    """(temperature, chroma scale, id suffix) for a model's metadata and a ``chroma`` setting.

    ``"auto"``: the calibration stored in the checkpoint (temperature and chroma
    fitted on validation photos after training), or (1, 1) for an uncalibrated
    model. A number overrides the chroma scale (the calibrated temperature is
    kept) and is recorded in the id, since the outputs differ.
    """
    cal = (meta or {}).get("calibration") or {}
    try:
        temperature = float(cal.get("temperature", 1.0))
        auto_chroma = float(cal.get("chroma", 1.0))
    except (TypeError, ValueError):
        temperature, auto_chroma = 1.0, 1.0
    if not (0.05 <= temperature <= 5.0):
        temperature = 1.0
    if not (0.0 <= auto_chroma <= 2.0):
        auto_chroma = 1.0
    if chroma is None or chroma == "auto":
        return temperature, auto_chroma, ""
    c = float(chroma)
    return temperature, c, ("" if c == 1.0 else f"@chroma{c:g}")


def update_meta(path, **entries) -> None:
    """Add or replace top-level entries (e.g. ``calibration``) in a checkpoint's JSON sidecar.

    The id does not change: it names the tensors, which stay as they are.
    """
    path = Path(path)
    meta = read_meta(path)
    meta.update(entries)
    text = json.dumps(meta, indent=2, default=str) + "\n"
    atomic_write(json_path(path.with_suffix(".safetensors")), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def read_meta(path) -> dict:
    """The JSON beside a checkpoint, checked; one-line errors."""
    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    if not path.is_file():
        raise ColorbatchError(f"model {path}: file not found")
    if path.suffix != ".safetensors":
        raise ColorbatchError(
            f"model {path}: not a colorbatch checkpoint (expected a .safetensors file with a .json beside it)"
        )
    jp = json_path(path)
    if not jp.is_file():
        raise ColorbatchError(
            f"model {path}: not a colorbatch checkpoint ({jp.name} is missing beside it)"
        )
    try:
        meta = json.loads(jp.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ColorbatchError(f"model {jp}: unreadable JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ColorbatchError(f"model {jp}: not a colorbatch checkpoint (no \"format\": \"{FORMAT}\")")
    from colorbatch.models.validate import validate_sidecar

    validate_sidecar(meta, jp)  # types and bounds of every field loading relies on
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ColorbatchError(
            f"model {path}: checkpoint format {meta.get('format_version')} is newer than this colorbatch "
            f"supports ({FORMAT_VERSION}); upgrade colorbatch"
        )
    if not isinstance(meta.get("model"), dict) or "encoder" not in meta["model"]:
        raise ColorbatchError(f"model {jp}: the \"model\" entry (architecture) is missing or incomplete")
    return meta


def model_id(path) -> str:
    meta = read_meta(path)
    return str(meta.get("id") or f"{meta['model'].get('name', 'model')}-{_file_sha(Path(path))[:12]}")


def load_checkpoint(path, device="cpu", pm=None):
    """Rebuild the model from ``path`` and load its tensors -> (model in eval mode, meta dict)."""
    from colorbatch.models import build_model

    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    meta = read_meta(path)
    arch = meta["model"]
    from_package = meta.get("encoder_tensors") == "weights-package"
    model = build_model(
        arch["encoder"],
        encoder_weights="imagenet" if from_package else "none",
        freeze_encoder=bool(arch.get("freeze_encoder", True)),
        pm=pm,
        widths=arch.get("widths"),
        out_stride=arch.get("out_stride"),
        head=arch.get("head"),
        hints=bool(arch.get("hints")),
        context=bool(arch.get("context")),
    )
    try:
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - truncated, garbage, foreign
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ColorbatchError(f"model {path}: corrupt or not a safetensors file ({first})") from None
    from colorbatch.models.validate import check_tensors

    check_tensors(state, path)  # NaN / infinite weights: refused at load
    own = model.state_dict()
    if from_package:  # the encoder came from the installed weights package
        own = {k: v for k, v in own.items() if not k.startswith("encoder.")}
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if missing or extra:
        which = f"{len(missing)} tensors missing (first: {missing[0]})" if missing else \
            f"{len(extra)} unexpected tensors (first: {extra[0]})"
        raise ColorbatchError(
            f"model {path}: does not match its architecture {arch.get('name', arch['encoder'])!r}: {which}"
        )
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise ColorbatchError(
                f"model {path}: tensor {k} has shape {tuple(state[k].shape)}, the architecture "
                f"expects {tuple(v.shape)}"
            )
    model.load_state_dict(state, strict=not from_package)
    model.checkpoint_meta = meta
    model.eval()
    return model.to(device), meta


def publish(path) -> Path:
    """Copy a finished checkpoint (+ JSON) into ``cache_dir()/models`` -> the new path."""
    src = Path(path)
    if src.suffix != ".safetensors":
        src = src.with_suffix(".safetensors")
    meta = read_meta(src)
    dest_dir = models_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    stem = str(meta.get("id") or src.stem)
    dest = dest_dir / f"{stem}.safetensors"
    atomic_write(dest, lambda tmp: shutil.copyfile(src, tmp))
    atomic_write(json_path(dest), lambda tmp: shutil.copyfile(json_path(src), tmp))
    now = _dt.datetime.now().timestamp()
    os.utime(dest, (now, now))
    return dest


def shipped_model() -> Path | None:
    """The default model that ships inside the package (``colorbatch/weights/default.safetensors``)."""
    p = Path(__file__).resolve().parent.parent / "weights" / "default.safetensors"
    return p if p.is_file() and json_path(p).is_file() else None


def newest_published() -> Path | None:
    """The newest model in the cache (one the user trained and published), if any."""
    d = models_dir()
    found = []
    if d.is_dir():
        for p in d.glob("*.safetensors"):
            if json_path(p).is_file():
                try:
                    found.append((p.stat().st_mtime, p))
                except OSError:
                    pass
    return max(found)[1] if found else None


def discover_model_why(explicit: str | Path | None = None) -> tuple[Path, str]:
    """(checkpoint, why): ``--model``, else $COLORBATCH_MODEL, else the newest model the
    user trained and published to the cache, else the default that ships with colorbatch."""
    if explicit:
        p = Path(str(explicit)).expanduser()
        if not p.is_file():
            raise ColorbatchError(f"model {p}: file not found (pass a .safetensors checkpoint)")
        return (p.with_suffix(".safetensors") if p.suffix == ".json" else p), "given with --model"
    env = os.environ.get(ENV_MODEL)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise ColorbatchError(f"COLORBATCH_MODEL={env}: file not found")
        return p, "set by COLORBATCH_MODEL"
    p = newest_published()
    if p is not None:
        return p, f"the newest model you trained and published (in {models_dir()})"
    p = shipped_model()
    if p is not None:
        return p, "the default model that ships with colorbatch (no trained model in the cache)"
    raise ColorbatchError("no colorization model found: " + HOW_TO_GET_ONE.format(models=models_dir()))


def discover_model(explicit: str | Path | None = None) -> Path:
    """The checkpoint to use (see :func:`discover_model_why`)."""
    return discover_model_why(explicit)[0]
