"""Train with several losses on a folder of colour photos and score held-out ones.

Splits the photos deterministically (sorted by name; every 4th is held out),
then for each loss runs load -> train -> load(held-out) -> colorize -> evaluate
with the same seed and time budget, and prints the aggregate figures beside
the gray baseline.

    python benchmarks/quality_losses.py PHOTOS_DIR --losses mse,rebalanced --budget 600 --out runs/quality
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

RECIPE = """schema_version = 1
name = "quality-{loss}"

[[steps]]
uses = "load"
with = {{ source = "{train}" }}

[[steps]]
uses = "train"
with = {{ model = "{model}", encoder_weights = "imagenet", loss = "{loss}", size = {size}, batch_size = {batch}, repeat = {repeat}, epochs = 500, time_budget = {budget}, lr = {lr}, val_fraction = 0.15, log_every = 0, publish = false, seed = 0 }}

[[steps]]
uses = "load"
with = {{ source = "{heldout}" }}

[[steps]]
uses = "colorize"
with = {{ size = {eval_size} }}

[[steps]]
uses = "evaluate"
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("photos", type=Path)
    p.add_argument("--losses", default="mse,rebalanced")
    p.add_argument("--budget", type=float, default=600, help="training seconds per loss")
    p.add_argument("--model", default="efficientnet-lite0")
    p.add_argument("--size", type=int, default=192)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeat", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-size", type=int, default=512)
    p.add_argument("--out", type=Path, default=Path("runs/quality"))
    a = p.parse_args()
    exts = {".jpg", ".jpeg", ".png"}
    files = sorted(f for f in a.photos.iterdir() if f.suffix.lower() in exts)
    heldout = files[3::4]
    train = [f for f in files if f not in heldout]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "train.txt").write_text("".join(f"{f.resolve()}\n" for f in train))
    (a.out / "heldout.txt").write_text("".join(f"{f.resolve()}\n" for f in heldout))
    print(f"{len(train)} training photos, {len(heldout)} held out: {', '.join(f.name for f in heldout)}", flush=True)
    for loss in a.losses.split(","):
        recipe = a.out / f"{loss}.toml"
        recipe.write_text(RECIPE.format(loss=loss, train=(a.out / "train.txt").resolve(),
                                        heldout=(a.out / "heldout.txt").resolve(), model=a.model, size=a.size,
                                        batch=a.batch, repeat=a.repeat, budget=a.budget, lr=a.lr,
                                        eval_size=a.eval_size))
        run = a.out / loss
        subprocess.run([sys.executable, "-m", "colorbatch", "run", str(recipe), "--run-dir", str(run)], check=False)
        agg = json.loads((run / "metrics.json").read_text())["aggregate"]
        line = [f"{loss:<11}"]
        for m in ("psnr", "ab_mse", "ssim", "colorfulness_gap"):
            line.append(f"{m} {agg[m]['mean']:.4g} (median {agg[m]['median']:.4g}; gray {agg['gray_' + m]['mean']:.4g})")
        line.append(f"psnr gain median {agg['psnr_gain']['median']:+.2f} dB, beats gray on {agg['better_than_gray']:.0%}")
        print(" | ".join(line), flush=True)


if __name__ == "__main__":
    main()
