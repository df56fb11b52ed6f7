"""Fused CPU kernels (colorbatch.kernels) against the current per-pixel path, per image.

    python benchmarks/kernels.py [--megapixels 2] [--runs 7] [--image PHOTO] [--threads 1]

Times, on one photo scaled to about M megapixels (default: scikit-image's astronaut),
the two per-pixel jobs of colorize outside the network:

  L*     decoded 8-bit RGB -> quantised L* (uint16): kernels.lq_from_rgb8 against
         color.Lq_from_u8 (the colorizer's table path) and color.rgb_to_L_np (float);
  compose  quantised L* + a*b*/128 at network size -> 8-bit sRGB: kernels.rgb8_from_lab
         against the colorizer's CPU recombination (compose_full on "cpu").

Each figure is the median of --runs runs, the variants interleaved in every round so a
busy machine slows them alike. With --threads 1 (default) torch and the kernels use one
thread (the pipeline's workers run one process per core); with --threads 0 both use all
cores. Prints one line per job with the ratios, then one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time


def _photo(path, megapixels):
    import numpy as np
    from PIL import Image

    if path:
        im = Image.open(path).convert("RGB")
    else:
        from skimage import data

        im = Image.fromarray(data.astronaut())
    s = (megapixels * 1e6 / (im.width * im.height)) ** 0.5
    im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.BICUBIC)
    return np.asarray(im)


def _compose_reference():
    """The colorizer's current recombination (moved between modules by issue 12)."""
    try:
        from colorbatch.recombine import compose_full
    except ImportError:
        from colorbatch.colorizer import compose_full
    return compose_full


def _medians(fns: dict, runs: int) -> dict:
    times = {k: [] for k in fns}
    for k, f in fns.items():  # once each first: compilation, tables, caches
        f()
    for _ in range(runs):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--megapixels", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--image", default=None, help="a photo to use (default: scikit-image's astronaut)")
    ap.add_argument("--size", type=int, default=256, help="network size: a*b* come at this long side")
    ap.add_argument("--threads", type=int, default=1, help="threads for torch and the kernels (0: all cores)")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from colorbatch import color, kernels

    if not kernels.available():
        raise SystemExit(f"kernels unavailable: {kernels.fallback_reason()}")
    parallel = args.threads != 1
    if args.threads > 0:
        torch.set_num_threads(args.threads)
        import numba

        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    t0 = time.perf_counter()
    kernels.warm_up()
    warm_s = time.perf_counter() - t0

    rgb = np.ascontiguousarray(_photo(args.image, args.megapixels))
    H, W = rgb.shape[:2]
    mp = H * W / 1e6
    print(f"image {W}x{H} ({mp:.2f} MP); {args.runs} runs, medians; torch threads {torch.get_num_threads()}, "
          f"kernels {'parallel' if parallel else 'one thread'}; kernels ready in {warm_s:.2f} s", flush=True)

    # L*
    Lf = np.empty((H, W), np.float32)
    t_L = _medians({
        "kernel": lambda: kernels.lq_from_rgb8(rgb, parallel=parallel),
        "table": lambda: color.Lq_from_u8(rgb),
        "float": lambda: color.rgb_to_L_np(rgb / np.float32(255.0)),
        "kernel_float": lambda: kernels.lstar_from_rgb8(rgb, out=Lf, parallel=parallel),
    }, args.runs)
    Lq = kernels.lq_from_rgb8(rgb)
    err_L = float(np.abs(Lq.astype(np.int32) - color.Lq_from_u8(rgb).astype(np.int32)).max() / kernels.L_SCALE)

    # compose: a smooth random a*b*/128 field at network size, like a prediction
    h = max(1, round(H * args.size / max(H, W)))
    w = max(1, round(W * args.size / max(H, W)))
    g = torch.Generator().manual_seed(0)
    pred = torch.nn.functional.interpolate(torch.rand(1, 2, max(1, h // 8), max(1, w // 8), generator=g) - 0.5,
                                           size=(h, w), mode="bilinear")[0].mul_(0.8).contiguous()
    compose_full = _compose_reference()
    ab_view = pred.numpy().transpose(1, 2, 0)
    out = np.empty((H, W, 3), np.uint8)

    def reference():
        with torch.inference_mode():
            return compose_full(Lq, pred, "cpu", want_ab=False)[0]

    t_C = _medians({
        "kernel": lambda: kernels.rgb8_from_lab(Lq, ab_view, ab_scale=128.0, out=out, parallel=parallel),
        "reference": reference,
    }, args.runs)
    ref = reference()
    got = kernels.rgb8_from_lab(Lq, ab_view, ab_scale=128.0)
    codes = int(np.abs(ref.astype(np.int16) - got.astype(np.int16)).max())

    ms = {k: v * 1e3 for k, v in t_L.items()}
    print(f"L*      per image: kernel {ms['kernel']:.1f} ms, colorizer's table path {ms['table']:.1f} ms "
          f"({t_L['table'] / t_L['kernel']:.2f}x), float path {ms['float']:.1f} ms "
          f"({t_L['float'] / t_L['kernel']:.2f}x); float32 output {ms['kernel_float']:.1f} ms; "
          f"max difference to the table path {err_L:.4f} L*", flush=True)
    mc = {k: v * 1e3 for k, v in t_C.items()}
    print(f"compose per image: kernel {mc['kernel']:.1f} ms, colorizer's CPU recombination {mc['reference']:.1f} ms "
          f"({t_C['reference'] / t_C['kernel']:.2f}x); max difference {codes} code(s)", flush=True)
    both_k = t_L["kernel"] + t_C["kernel"]
    both_r = t_L["table"] + t_C["reference"]
    print(f"both    per image: {both_k * 1e3:.1f} ms against {both_r * 1e3:.1f} ms ({both_r / both_k:.2f}x); "
          f"per 2 MP: {both_k * 2 / mp * 1e3:.1f} ms against {both_r * 2 / mp * 1e3:.1f} ms", flush=True)
    print(json.dumps({
        "megapixels": round(mp, 3), "runs": args.runs, "threads": args.threads,
        "L_kernel_ms": round(ms["kernel"], 2), "L_table_ms": round(ms["table"], 2), "L_float_ms": round(ms["float"], 2),
        "L_ratio": round(t_L["table"] / t_L["kernel"], 2),
        "compose_kernel_ms": round(mc["kernel"], 2), "compose_reference_ms": round(mc["reference"], 2),
        "compose_ratio": round(t_C["reference"] / t_C["kernel"], 2),
        "both_ratio": round(both_r / both_k, 2), "max_code_difference": codes, "max_L_difference": round(err_L, 4),
        "warm_up_s": round(warm_s, 3),
    }))


if __name__ == "__main__":
    main()
