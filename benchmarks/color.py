"""sRGB <-> LAB speed and accuracy: colorbatch.color (torch) against scikit-image.

    python benchmarks/color.py [--size 1024] [--threads N] [--repeat 9] [--compile]

Converts one random size x size image both ways with each implementation,
prints the max absolute difference (L*, a*, b* and RGB) and the speed ratio
(median times of --repeat calls);
``--compile`` also times ``torch.compile`` of the torch functions (the first
call compiles, ~20 s). The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings


def _best(fn, repeat):
    """Median time of ``repeat`` calls after one warm-up (the machine may be shared)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--no-malloc-tuning", action="store_true", help="keep glibc's malloc defaults")
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from skimage import color as skcolor

    from colorbatch import color
    from colorbatch.device import cpu_cores, tune_malloc

    if not args.no_malloc_tuning:
        tune_malloc()
    torch.set_num_threads(args.threads or cpu_cores())
    rng = np.random.default_rng(0)
    rgb = rng.random((args.size, args.size, 3)).astype(np.float32)
    x = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()[None]

    with torch.inference_mode():
        lab_t = color.rgb_to_lab(x)
        lab_s = skcolor.rgb2lab(rgb)  # float32 in, like ours
        err_fwd = float(np.abs(lab_t[0].permute(1, 2, 0).numpy() - lab_s).max())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            back_s = skcolor.lab2rgb(lab_s)
        back_t = color.lab_to_rgb(torch.from_numpy(np.ascontiguousarray(lab_s.transpose(2, 0, 1)))[None])
        err_back = float(np.abs(back_t[0].permute(1, 2, 0).numpy() - back_s).max())

        t_sk_fwd = _best(lambda: skcolor.rgb2lab(rgb), args.repeat)
        t_t_fwd = _best(lambda: color.rgb_to_lab(x), args.repeat)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_sk_back = _best(lambda: skcolor.lab2rgb(lab_s), args.repeat)
        t_t_back = _best(lambda: color.lab_to_rgb(lab_t), args.repeat)
        t_keep = _best(lambda: color.lab_to_rgb_keep_L(lab_t), args.repeat)

    print(f"{args.size}x{args.size}, {torch.get_num_threads()} torch threads")
    print(f"rgb->lab: skimage {t_sk_fwd * 1e3:.1f} ms, torch {t_t_fwd * 1e3:.1f} ms = {t_sk_fwd / t_t_fwd:.2f}x; "
          f"max |diff| {err_fwd:.2e}")
    print(f"lab->rgb: skimage {t_sk_back * 1e3:.1f} ms, torch {t_t_back * 1e3:.1f} ms = {t_sk_back / t_t_back:.2f}x; "
          f"max |diff| {err_back:.2e}; keep-L* variant {t_keep * 1e3:.1f} ms")
    result = {
        "size": args.size,
        "threads": torch.get_num_threads(),
        "rgb2lab_speedup": round(t_sk_fwd / t_t_fwd, 2),
        "lab2rgb_speedup": round(t_sk_back / t_t_back, 2),
        "rgb2lab_max_abs_diff": err_fwd,
        "lab2rgb_max_abs_diff": err_back,
    }
    if args.compile:
        fwd = torch.compile(color.rgb_to_lab, dynamic=False)
        back = torch.compile(color.lab_to_rgb, dynamic=False)
        with torch.inference_mode():
            t0 = time.perf_counter()
            fwd(x)
            back(lab_t)
            compile_s = time.perf_counter() - t0
            t_c_fwd = _best(lambda: fwd(x), args.repeat)
            t_c_back = _best(lambda: back(lab_t), args.repeat)
            err_c = float((fwd(x) - lab_t).abs().max())
        print(f"compiled ({compile_s:.0f} s to compile): rgb->lab {t_sk_fwd / t_c_fwd:.2f}x, "
              f"lab->rgb {t_sk_back / t_c_back:.2f}x faster than skimage; max |diff| vs eager {err_c:.1e}")
        result.update(compiled_rgb2lab_speedup=round(t_sk_fwd / t_c_fwd, 2),
                      compiled_lab2rgb_speedup=round(t_sk_back / t_c_back, 2), compile_seconds=round(compile_s, 1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
