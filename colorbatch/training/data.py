"""Training data: decoding and augmentation in DataLoader workers.

Every random choice is a pure function of ``(seed, epoch, position)``:
:class:`EpochSampler` yields ``(index, augmentation_seed)`` pairs in an order
fixed by the seed and epoch, and :class:`ColorDataset` draws the crop and flip
from the pair's seed. So the data order and the augmentations do not depend on
the number of workers or ranks' timing, and a run resumed in the middle of an
epoch sees exactly the batches the uninterrupted run would have seen.

Workers return sRGB crops (3 x S x S float32, [0, 1]); the conversion to LAB
happens batched on the device in the training loop. A source that is already
gray (no colour channels, or mean chroma below ``gray_threshold``) or that
cannot be read is returned as a "skip" record; :func:`collate` drops those and
passes their indices on so the loop can count and report them once.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def read_rgb(path) -> tuple[np.ndarray | None, str]:
    """Decode ``path`` with the shared image I/O: (HxWx3 float32 or None for gray, notes)."""
    from colorbatch.images import read_image

    dec = read_image(path)
    if not dec.is_color:
        return None, "grayscale source"
    return np.asarray(dec.pixels, dtype=np.float32), ""


def chroma(rgb: np.ndarray) -> float:
    """Mean over pixels of max(R,G,B) - min(R,G,B) (0 for gray, up to 1)."""
    step = max(1, int(math.sqrt(rgb.shape[0] * rgb.shape[1] / 65536)))
    sub = rgb[::step, ::step]
    return float((sub.max(axis=-1) - sub.min(axis=-1)).mean())


def random_resized_crop_box(h: int, w: int, rng: np.random.Generator,
                            scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random crop covering ``scale`` of the area."""
    area = h * w
    for _ in range(10):
        target = area * rng.uniform(*scale)
        r = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw = int(round(math.sqrt(target * r)))
        ch = int(round(math.sqrt(target / r)))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(rng.integers(0, h - ch + 1))
            left = int(rng.integers(0, w - cw + 1))
            return top, left, ch, cw
    side = min(h, w)
    return (h - side) // 2, (w - side) // 2, side, side


def center_box(h: int, w: int) -> tuple[int, int, int, int]:
    side = min(h, w)
    return (h - side) // 2, (w - side) // 2, side, side


def crop_resize(rgb: np.ndarray, box, size: int, flip: bool) -> torch.Tensor:
    """Crop ``box`` from HxWx3 ``rgb`` and resize to size x size: (3, S, S) float32."""
    top, left, ch, cw = box
    x = torch.from_numpy(np.ascontiguousarray(rgb[top:top + ch, left:left + cw])).permute(2, 0, 1)
    if (ch, cw) != (size, size):
        x = torch.nn.functional.interpolate(
            x[None], size=(size, size), mode="bilinear", align_corners=False, antialias=(ch > size or cw > size)
        )[0]
    if flip:
        x = torch.flip(x, dims=[2])
    return x.clamp_(0.0, 1.0).contiguous()


class ColorDataset(Dataset):
    """Colour images as (3, size, size) crops; gray or unreadable sources are skipped.

    ``sources`` holds file paths or already decoded HxWx3 float arrays.
    ``train``: random resized crop + horizontal flip; otherwise a centre crop.
    Keys are ``(index, augmentation_seed)`` pairs (see :class:`EpochSampler`)
    or plain indices (seed 0).
    """

    def __init__(self, sources: Sequence[Any], size: int, *, train: bool = True,
                 gray_threshold: float = 0.02, scale=(0.25, 1.0)):
        self.sources = list(sources)
        self.size = int(size)
        self.train = train
        self.gray_threshold = gray_threshold
        self.scale = scale

    def __len__(self) -> int:
        return len(self.sources)

    def load(self, index: int) -> np.ndarray:
        src = self.sources[index]
        if isinstance(src, np.ndarray):
            rgb = src if src.ndim == 3 else None
            why = "grayscale source"
        else:
            rgb, why = read_rgb(src)
        if rgb is None:
            raise _Skip("gray", why)
        if chroma(rgb) < self.gray_threshold:
            raise _Skip("gray", f"near-zero chroma (mean {chroma(rgb):.4f} < {self.gray_threshold})")
        return rgb

    def __getitem__(self, key) -> dict:
        index, seed = key if isinstance(key, tuple) else (int(key), 0)
        try:
            rgb = self.load(index)
        except _Skip as skip:
            return {"index": index, "ok": False, "why": skip.kind, "reason": skip.reason}
        except Exception as exc:  # an unreadable file: reported, training goes on
            return {"index": index, "ok": False, "why": "error", "reason": str(exc) or type(exc).__name__}
        h, w = rgb.shape[:2]
        if self.train:
            rng = np.random.default_rng(seed)
            box = random_resized_crop_box(h, w, rng, scale=self.scale)
            flip = bool(rng.random() < 0.5)
        else:
            box, flip = center_box(h, w), False
        return {"index": index, "ok": True, "rgb": crop_resize(rgb, box, self.size, flip)}


class _Skip(Exception):
    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def collate(samples: list[dict]) -> dict:
    """Stack the good crops; list the skipped ones as (index, why, reason)."""
    good = [s["rgb"] for s in samples if s["ok"]]
    return {
        "rgb": torch.stack(good) if good else None,
        "skipped": [(s["index"], s["why"], s["reason"]) for s in samples if not s["ok"]],
    }


class EpochSampler(Sampler):
    """Deterministic shuffled order per epoch, sharded by rank, resumable.

    The permutation of epoch ``e`` comes from ``seed + e``; the list is padded
    (by wrapping) to a multiple of ``world_size`` and rank ``r`` takes every
    ``world_size``-th entry from ``r``; ``repeat`` > 1 shows each source that
    many times per epoch (different crops). ``start`` skips that many of this
    rank's samples (a resumed epoch). Each sample carries its augmentation
    seed, derived from (seed, epoch, position).
    """

    def __init__(self, n: int, *, seed: int = 0, epoch: int = 0, rank: int = 0,
                 world_size: int = 1, shuffle: bool = True, repeat: int = 1, start: int = 0):
        self.n, self.seed, self.epoch = n, seed, epoch
        self.rank, self.world_size = rank, world_size
        self.shuffle, self.repeat, self.start = shuffle, max(1, repeat), start

    def positions(self) -> list[tuple[int, int]]:
        total = self.n * self.repeat
        if self.shuffle:
            g = torch.Generator().manual_seed(int(self.seed) * 1000003 + int(self.epoch))
            order = torch.randperm(total, generator=g).tolist()
        else:
            order = list(range(total))
        if not order:
            return []
        per_rank = math.ceil(len(order) / self.world_size)
        padded = (order * (per_rank * self.world_size // len(order) + 1))[: per_rank * self.world_size]
        mine = list(enumerate(padded))[self.rank:: self.world_size]
        base = (int(self.seed) * 7919 + int(self.epoch)) * 1_000_003
        return [(p % self.n, base + pos) for pos, p in mine]

    def per_rank(self) -> int:
        total = self.n * self.repeat
        return math.ceil(total / self.world_size) if total else 0

    def __iter__(self):
        return iter(self.positions()[self.start:])

    def __len__(self) -> int:
        return max(0, self.per_rank() - self.start)


def split_validation(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, val) with ``round(n * fraction)`` (at least 1 when > 0) held out."""
    if fraction <= 0 or n < 2:
        return list(range(n)), []
    k = min(n - 1, max(1, int(round(n * fraction))))
    g = torch.Generator().manual_seed(int(seed) + 12345)
    perm = torch.randperm(n, generator=g).tolist()
    val = sorted(perm[:k])
    held = set(val)
    return [i for i in range(n) if i not in held], val


def source_of(item) -> Any:
    """What the dataset reads for an item: its path, else its decoded pixels."""
    if item.path is not None and Path(item.path).is_file():
        return Path(item.path)
    if item.rgb is not None:
        return np.asarray(item.rgb, np.float32)
    return None
