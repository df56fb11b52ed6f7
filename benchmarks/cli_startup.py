"""How long `colorbatch --help` and `colorbatch plugins` take, and whether they import torch.

    python benchmarks/cli_startup.py [--runs 9]

Prints the median wall time of each command over several runs and the heavy modules
each one imported (there should be none). Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "torchvision", "imageio", "skimage")


def timed(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "colorbatch", *args], capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def heavy_imports(args: list[str]) -> list[str]:
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "colorbatch", *args], capture_output=True, text=True
    )
    found = set()
    for line in r.stderr.splitlines():
        name = line.rsplit("|", 1)[-1].strip()
        if name.split(".")[0] in HEAVY:
            found.add(name.split(".")[0])
    return sorted(found)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    n = ap.parse_args().runs
    result = {}
    for label, args in (("help", ["--help"]), ("plugins", ["plugins"])):
        med = timed(args, n)
        heavy = heavy_imports(args)
        print(f"colorbatch {' '.join(args)}: median {med:.3f} s over {n} runs; heavy imports: {heavy or 'none'}")
        result[f"{label}_median_s"] = round(med, 3)
        result[f"{label}_heavy_imports"] = heavy
    print(json.dumps(result))


if __name__ == "__main__":
    main()
