"""The end of a training run: colour calibration and the publish-if-better comparison.

Functions of the :class:`colorbatch.training.loop.Trainer` (passed as ``self``):
:func:`calibrate_checkpoint` fits the colour strength on the validation photos and
stores it beside the checkpoint; :func:`beats_current` measures the new model and
the one ``colorize`` would use now on the same photos, prints them side by side
and says whether the new one is better.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from colorbatch.training.data import ColorDataset


def val_images(self, limit: int = 64) -> list:
    """Up to ``limit`` validation photos as RGB arrays, the long side at most calibrate_size."""
    if not hasattr(self, "_val_rgb"):
        ds = ColorDataset(self.val_sources[:limit], self.o.calibrate_size, train=False,
                          gray_threshold=self.o.gray_threshold)
        images = []
        for i in range(len(ds)):
            try:
                rgb = ds.load(i)
            except Exception:  # noqa: BLE001 - gray or unreadable: reported during validation
                continue
            h, w = rgb.shape[:2]
            s = self.o.calibrate_size / max(h, w)
            if s < 1:  # measure at the network's resolution: cheap, and what matters for colour
                t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
                t = torch.nn.functional.interpolate(t, size=(max(1, round(h * s)), max(1, round(w * s))),
                                                    mode="area")
                rgb = t[0].permute(1, 2, 0).clamp_(0, 1).numpy()
            images.append(rgb)
        self._val_rgb = images
    return self._val_rgb

def calibrate_checkpoint(self, path: Path) -> None:
    """Fit the colour strength on the validation images; store it beside the checkpoint."""
    from colorbatch.models.checkpoint import load_checkpoint, update_meta
    from colorbatch.training.calibrate import calibrate

    images = val_images(self) if self.val_sources else []
    if not images:
        self.ctx.log("train: no validation images, so no colour calibration (colorize uses chroma 1)")
        return
    model, _ = load_checkpoint(path, device="cpu", pm=self.ctx.pm)
    task = self.ctx.task("calibrate colour strength", total=len(images), unit="images")
    cal = calibrate(model, images, size=self.o.calibrate_size, progress=lambda n: task.advance())
    task.close()
    if not cal:
        return
    update_meta(path, calibration=cal)
    c, u = cal["chosen"], cal["uncalibrated"]
    self.ctx.log(
        f"calibrated on {cal['images']} validation images: temperature {cal['temperature']:g}, chroma "
        f"{cal['chroma']:g} (PSNR {c['psnr_mean']:.2f} dB vs gray {c['gray_psnr_mean']:.2f}, colourfulness "
        f"{c['colorfulness_mean']:.1f} vs truth {c['colorfulness_gt_mean']:.1f}; uncalibrated "
        f"{u['psnr_mean']:.2f} dB, colourfulness {u['colorfulness_mean']:.1f})"
    )

def beats_current(self, path: Path) -> bool:
    """publish = "if-better": does the new model beat the one colorize would use now?

    Both are measured on the validation photos (each with its own calibrated
    colour strength) and shown side by side with gray.
    """
    from colorbatch.colorizer import Colorizer
    from colorbatch.errors import ColorbatchError
    from colorbatch.metrics import rgb_to_lab
    from colorbatch.models.checkpoint import discover_model_why
    from colorbatch.training.calibrate import gray_psnr, image_scores, summary

    try:
        current, why = discover_model_why(None)
    except ColorbatchError:
        self.ctx.log("train: no model to compare with; publishing")
        return True
    images = val_images(self) if self.val_sources else []
    if not images:
        self.ctx.log("train: publish = if-better needs validation photos to compare on; not published")
        return False
    sums = {}
    for label, model_path in (("trained now", path), ("current", current)):
        col = Colorizer(model_path, "cpu", self.o.calibrate_size, 1)
        rows = []
        for rgb in images:
            L = rgb_to_lab(rgb)[..., 0]
            row = image_scores(rgb, L, col.predict_ab([L])[0])
            row["gray_psnr"] = gray_psnr(rgb, L)
            rows.append(row)
        sums[label] = summary(rows)
    new, cur = sums["trained now"], sums["current"]
    self.ctx.log(f"on {new['n']} validation photos (PSNR dB, mean; colourfulness vs the truth's):")
    self.ctx.log(f"  gray input            {new['gray_psnr_mean']:6.2f}  colourfulness  0.0 vs "
                 f"{new['colorfulness_gt_mean']:.1f}")
    for label, s_ in (("trained now", new), ("current: " + current.stem[:10], cur)):
        self.ctx.log(f"  {label:21s} {s_['psnr_mean']:6.2f}  colourfulness {s_['colorfulness_mean']:4.1f}"
                     f"  beats gray on {s_['beat_gray']}/{s_['n']}")
    better = new["psnr_mean"] > cur["psnr_mean"]
    if better:
        self.ctx.log(f"the trained model beats the current one ({why}): publishing it")
    else:
        self.ctx.log(f"not published: the trained model does not beat the current one ({why}), "
                     f"which colorize keeps using; this run's model is in {self.ckpt_dir}")
    return better



def init_weights(model, source: str) -> str:
    """Load a checkpoint's tensors into ``model`` (before training) -> a line for the log.

    ``source`` is a checkpoint path or ``shipped``. The architectures must agree
    except for tensors only ``model`` has (new hint inputs keep their zero
    initialisation) and encoder tensors the checkpoint left to its weights package.
    """
    from safetensors.torch import load_file

    from colorbatch.errors import ColorbatchError
    from colorbatch.models.checkpoint import read_meta, shipped_model
    from colorbatch.models.validate import check_tensors

    path = shipped_model() if source == "shipped" else Path(source).expanduser()
    if path is None or not Path(path).is_file():
        raise ColorbatchError(f"train: init_from {source!r}: no such checkpoint (a .safetensors path or 'shipped')")
    path = Path(path).with_suffix(".safetensors")
    meta = read_meta(path)
    if meta["model"].get("head", "regress") != model.arch.get("head") or meta["model"]["encoder"] != model.arch["encoder"]:
        raise ColorbatchError(
            f"train: init_from {path}: its model ({meta['model'].get('encoder')}, head {meta['model'].get('head')}) "
            f"differs from the one being trained ({model.arch['encoder']}, head {model.arch.get('head')})")
    state = load_file(str(path), device="cpu")
    check_tensors(state, path)
    own = model.state_dict()
    bad = [k for k, v in state.items() if k not in own or tuple(own[k].shape) != tuple(v.shape)]
    if bad:
        raise ColorbatchError(f"train: init_from {path}: tensor {bad[0]} does not fit the model being trained")
    model.load_state_dict(state, strict=False)
    fresh = [k for k in own if k not in state and not k.startswith("encoder.")]
    return f"train: started from {path.name} ({len(state)} tensors; {len(fresh)} new ones keep their initialisation)"
