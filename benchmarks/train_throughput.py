"""Training throughput (images/s) of one optimizer step at a given crop size.

Measures what the train step does per batch: sRGB -> LAB on the device, the
forward pass, the loss on a*b*/128, backward and AdamW, on random crops (no
decoding, so the figure is the model's ceiling). Prints one line per encoder.

    python benchmarks/train_throughput.py                # both encoders, frozen, 224 px
    python benchmarks/train_throughput.py --size 160 --batch 8 --threads 2 --unfrozen
"""
from __future__ import annotations

import argparse
import time


def bench(encoder: str, weights: str, frozen: bool, size: int, batch: int, steps: int, warmup: int, device: str):
    import torch

    from colorbatch.color import rgb_to_lab
    from colorbatch.device import pick_device
    from colorbatch.models import build_model
    from colorbatch.training.losses import make_loss

    dev = pick_device(device)
    model = build_model(encoder, weights, frozen).to(dev)
    cuda = dev.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss_fn = make_loss("mse")
    rgb = torch.rand(batch, 3, size, size)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        lab = rgb_to_lab(rgb.to(dev))
        with amp:
            pred = model(lab[:, :1] / 100)
        loss = loss_fn(pred.float(), lab[:, 1:] / 128)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(times)
    # on a shared machine the fastest step is the best estimate of an idle machine's speed
    print(f"{encoder:<18} weights={weights:<8} {'frozen' if frozen else 'trainable'} size={size} batch={batch} "
          f"device={dev} threads={torch.get_num_threads()}: {batch * len(times) / total:.2f} img/s mean, "
          f"{batch / min(times):.2f} img/s best step ({total / len(times) * 1000:.0f} ms/step; "
          f"{trainable / 1e6:.2f}M trainable params)", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--unfrozen", action="store_true")
    p.add_argument("--encoders", default="efficientnet-lite0:imagenet,resnet50:none",
                   help="comma list of encoder:weights (resnet50 weights 'none' measure the same speed offline)")
    a = p.parse_args()
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    for spec in a.encoders.split(","):
        enc, _, weights = spec.partition(":")
        bench(enc, weights or "imagenet", not a.unfrozen, a.size, a.batch, a.steps, a.warmup, a.device)


if __name__ == "__main__":
    main()
