"""Make a trained checkpoint the default model that ships inside the package.

    python tools/ship_default.py runs/train-default/checkpoints/best.safetensors

Writes ``colorbatch/weights/default.safetensors`` (+ ``.json``) without the
frozen encoder's tensors (they come from the installed ImageNet weights
package), keeping the checkpoint's calibration, training record and config,
checks that it reproduces the checkpoint's outputs, and prints the sha256 and
size to put in ``docs/model-card.md``.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "colorbatch" / "weights" / "default.safetensors"
LIMIT = 15 * 1024 * 1024


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--out", type=Path, default=DEST)
    a = ap.parse_args(argv)

    import torch

    from colorbatch.models.checkpoint import load_checkpoint, read_meta, save_checkpoint, update_meta

    model, meta = load_checkpoint(a.checkpoint)
    model.arch = dict(meta["model"])  # as trained (the load rebuilt it without ImageNet weights)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    path = save_checkpoint(a.out, model, meta.get("config"), meta.get("training"), omit_encoder=True)
    extra = {k: meta[k] for k in ("calibration",) if k in meta}
    extra["source_checkpoint"] = {"id": meta.get("id"), "created": meta.get("created")}
    update_meta(path, **extra)
    again, _ = load_checkpoint(path)
    x = torch.rand(1, 1, 96, 128)
    with torch.no_grad():
        diff = float((again(x) - model(x)).abs().max())
    if diff > 1e-5:
        print(f"error: the shipped copy differs from the checkpoint (max {diff:g})", file=sys.stderr)
        return 1
    size = path.stat().st_size
    if size > LIMIT:
        print(f"error: {path} is {size / 2**20:.1f} MiB, over the 15 MB limit", file=sys.stderr)
        return 1
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert read_meta(path)["sha256"] == sha
    print(f"shipped {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {size / 2**20:.2f} MiB, "
          f"sha256 {sha}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
