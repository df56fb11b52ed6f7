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


def save_checkpoint(path, model, config: dict | None = None, training: dict | None = None) -> Path:
    """Write ``path`` (.safetensors) and ``path.with_suffix('.json')`` atomically."""
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

    state = {k: v.detach().to("cpu").contiguous() for k, v in inner.state_dict().items()}
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
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    text = json.dumps(meta, indent=2, default=str) + "\n"
    atomic_write(json_path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path


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
    model = build_model(
        arch["encoder"],
        encoder_weights="none",
        freeze_encoder=bool(arch.get("freeze_encoder", True)),
        pm=pm,
        widths=arch.get("widths"),
        out_stride=arch.get("out_stride"),
        head=arch.get("head"),
    )
    try:
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - truncated, garbage, foreign
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ColorbatchError(f"model {path}: corrupt or not a safetensors file ({first})") from None
    own = model.state_dict()
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
    model.load_state_dict(state, strict=True)
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


def discover_model(explicit: str | Path | None = None) -> Path:
    """The checkpoint to use: explicit, else $COLORBATCH_MODEL, else the newest in the cache."""
    if explicit:
        p = Path(str(explicit)).expanduser()
        if not p.is_file():
            raise ColorbatchError(f"model {p}: file not found (pass a .safetensors checkpoint)")
        return p.with_suffix(".safetensors") if p.suffix == ".json" else p
    env = os.environ.get(ENV_MODEL)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise ColorbatchError(f"COLORBATCH_MODEL={env}: file not found")
        return p
    d = models_dir()
    found = []
    if d.is_dir():
        for p in d.glob("*.safetensors"):
            if json_path(p).is_file():
                try:
                    found.append((p.stat().st_mtime, p))
                except OSError:
                    pass
    if found:
        return max(found)[1]
    raise ColorbatchError("no colorization model found: " + HOW_TO_GET_ONE.format(models=d))
