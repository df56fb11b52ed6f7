"""Colour hints as network inputs: local point hints and a global (reference) hint.

After Zhang et al. 2017 ("Real-Time User-Guided Image Colorization with Learned
Deep Priors"), adapted to a frozen encoder: the hints enter the *decoder*.

Local hints   ``ab`` (B, 2, H, W) a*b*/128 at hinted pixels (0 elsewhere) and
              ``mask`` (B, 1, H, W) 1 where a hint is given, at the network's
              input resolution. Each decoder stage sees them pooled to its
              stride: the mean hint colour in the cell and whether the cell holds
              a hint (:func:`pool_local`), through a zero-initialised 3x3 conv.
Global hint   ``glob`` (B, GLOBAL_DIM): an 8 x 8 histogram of a*b* (32-unit
              cells, weighted by chroma so gray pixels say little), the mean
              chroma/128 and a presence flag (:func:`global_hint`), through a
              small MLP whose zero-initialised output biases every stage.

Zero initialisation means a hint-aware decoder starts out exactly as the
automatic one, so it can be fine-tuned from an automatic model. Training
simulates hints from the truth (:func:`simulate`): often none, so the automatic
result does not get worse. torch is imported lazily.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

GLOBAL_GRID = 8
GLOBAL_DIM = GLOBAL_GRID * GLOBAL_GRID + 2


@dataclass
class Hints:
    """Hint tensors for one batch; any part may be None (= not given)."""

    ab: Any = None       # (B, 2, H, W) a*b*/128
    mask: Any = None     # (B, 1, H, W) in {0, 1}
    glob: Any = None     # (B, GLOBAL_DIM)
    points: Any = None   # per image, [(y, x, radius, a128, b128)] at the maps' size (for refine)
    colourfulness: Any = None  # the reference's Hasler-Suesstrunk colourfulness (for refine), one image
    chroma: Any = None   # this image's colour strength (overrides the run's; not a network input)

    @property
    def empty(self) -> bool:
        return self.mask is None and self.glob is None

    def pad(self, pw: int, ph: int) -> "Hints":
        """Zero-pad the local maps on the right/bottom (as the network pads L*)."""
        import torch.nn.functional as F

        if self.mask is None or not (pw or ph):
            return self
        return replace(self, ab=F.pad(self.ab, (0, pw, 0, ph)), mask=F.pad(self.mask, (0, pw, 0, ph)))

    def to(self, device, dtype=None) -> "Hints":
        def mv(t):
            return None if t is None else t.to(device=device, dtype=dtype or t.dtype)

        return replace(self, ab=mv(self.ab), mask=mv(self.mask), glob=mv(self.glob))


def pool_local(ab, mask, size):
    """(B, 3, h, w): per cell of ``size``, the mean hint a*b*/128 and the presence (0/1)."""
    import torch
    import torch.nn.functional as F

    m = F.adaptive_avg_pool2d(mask.float(), size)
    s = F.adaptive_avg_pool2d(ab.float() * mask.float(), size)
    present = (m > 0).to(s.dtype)
    mean = s / m.clamp(min=1e-8) * present
    return torch.cat((mean, present), 1)


def global_hint(ab128, weight=None):
    """(B, 2, H, W) a*b*/128 of a reference -> (B, GLOBAL_DIM) global hint vectors.

    ``weight`` (B, 1, H, W) optionally restricts which pixels count.
    """
    import torch

    ab = ab128.float().flatten(2)  # B, 2, N
    B = ab.shape[0]
    chroma = ab.pow(2).sum(1).sqrt()  # B, N
    w = chroma.clone()
    if weight is not None:
        w = w * weight.float().flatten(2)[:, 0]
    idx = ((ab.clamp(-0.999, 0.999) + 1.0) * (GLOBAL_GRID / 2.0)).long()  # 0..GRID-1
    flat = idx[:, 0] * GLOBAL_GRID + idx[:, 1]
    hist = torch.zeros(B, GLOBAL_GRID * GLOBAL_GRID, device=ab.device)
    hist.scatter_add_(1, flat, w)
    hist = hist / hist.sum(1, keepdim=True).clamp(min=1e-8)
    n = (weight.float().flatten(2)[:, 0].sum(1) if weight is not None else torch.full((B,), float(ab.shape[2]),
                                                                                        device=ab.device))
    mean_chroma = (chroma * (weight.float().flatten(2)[:, 0] if weight is not None else 1.0)).sum(1) / n.clamp(min=1)
    return torch.cat((hist, mean_chroma[:, None], torch.ones(B, 1, device=ab.device)), 1)


def points_to_maps(points, shape, device=None):
    """Rasterise point hints onto (B, 2, H, W) / (B, 1, H, W) maps.

    ``points``: per image, a list of ``(y, x, radius, a128, b128)`` in pixels of the
    map (radius 0 = one pixel). Later points overwrite earlier ones.
    """
    import torch

    B, H, W = shape
    ab = torch.zeros(B, 2, H, W, device=device)
    mask = torch.zeros(B, 1, H, W, device=device)
    for i, pts in enumerate(points):
        for y, x, r, a, b in pts:
            r = max(0, int(round(r)))
            y0, y1 = max(0, int(round(y)) - r), min(H, int(round(y)) + r + 1)
            x0, x1 = max(0, int(round(x)) - r), min(W, int(round(x)) + r + 1)
            if y0 >= y1 or x0 >= x1:
                continue
            ab[i, 0, y0:y1, x0:x1] = a
            ab[i, 1, y0:y1, x0:x1] = b
            mask[i, 0, y0:y1, x0:x1] = 1.0
    return ab, mask


def simulate_points(target, counts, generator=None, max_radius: int = 4):
    """Point hints drawn from the truth: per image ``counts[i]`` square patches at random
    places, each with the patch's mean a*b* (Zhang et al.'s simulated user).

    ``target`` (B, 2, H, W) a*b*/128 -> list of per-image point lists for :func:`points_to_maps`.
    """
    import torch

    B, _, H, W = target.shape
    out = []
    for i in range(B):
        pts = []
        for _ in range(int(counts[i])):
            r = int(torch.randint(0, max_radius + 1, (1,), generator=generator))
            y = int(torch.randint(0, H, (1,), generator=generator))
            x = int(torch.randint(0, W, (1,), generator=generator))
            patch = target[i, :, max(0, y - r):y + r + 1, max(0, x - r):x + r + 1]
            a, b = patch.float().mean(dim=(1, 2)).tolist()
            pts.append((y, x, r, a, b))
        out.append(pts)
    return out


def simulate(target, generator=None, p_none: float = 0.5, mean_points: float = 8.0, max_points: int = 40,
             p_global: float = 0.2) -> Hints:
    """Training hints for a batch of true a*b*/128 (B, 2, H, W).

    With probability ``p_none`` an image gets no point hint; otherwise a geometric
    number of points (mean ``mean_points``, at most ``max_points``). With
    probability ``p_global`` it gets the global hint of its own truth (the oracle a
    reference photo approximates).
    """
    import torch

    B = target.shape[0]
    u = torch.rand(B, generator=generator)
    p = 1.0 / max(1.0, mean_points)
    geo = torch.floor(torch.log(torch.rand(B, generator=generator).clamp(min=1e-9)) / torch.log(torch.tensor(1 - p)))
    counts = torch.where(u < p_none, torch.zeros(B), (geo + 1).clamp(max=max_points))
    ab, mask = points_to_maps(simulate_points(target.detach().cpu(), counts, generator), (B,) + target.shape[-2:])
    glob = global_hint(target.detach())
    use = (torch.rand(B, generator=generator) < p_global).to(glob.dtype).to(glob.device)
    return Hints(ab.to(target.device), mask.to(target.device), glob * use[:, None])


def srgb_to_ab128(colours) -> list[tuple[float, float]]:
    """sRGB triplets 0-255 -> their (a*, b*) / 128."""
    import numpy as np

    from colorbatch.metrics import rgb_to_lab

    if not colours:
        return []
    lab = rgb_to_lab(np.asarray(colours, dtype=np.float32).reshape(1, -1, 3) / 255.0)[0]
    return [(float(a) / 128.0, float(b) / 128.0) for _, a, b in lab]


def reference_hint(rgb):
    """A colour photo (H x W x 3 float 0-1) -> its (1, GLOBAL_DIM) global hint."""
    import numpy as np
    import torch

    from colorbatch.metrics import rgb_to_lab

    rgb = np.asarray(rgb, dtype=np.float32)
    step = max(1, int(max(rgb.shape[:2]) // 256))
    lab = rgb_to_lab(rgb[::step, ::step])
    ab = torch.from_numpy(np.ascontiguousarray(lab[..., 1:])).permute(2, 0, 1)[None] / 128.0
    return global_hint(ab)


def reference_colourfulness(rgb) -> float:
    """A colour photo's Hasler-Suesstrunk colourfulness (how vivid it is; see :func:`refine`)."""
    import numpy as np

    from colorbatch.metrics import colorfulness, to_uint8

    rgb = np.asarray(rgb)
    step = max(1, int(max(rgb.shape[:2]) // 512))
    return float(colorfulness(to_uint8(rgb[::step, ::step])))


def for_image(points_px, original_hw, net_hw, reference=None, colourfulness=None, chroma=None) -> Hints:
    """Hints (batch of one, at network size ``net_hw``) for an original of ``original_hw``.

    ``points_px``: (x, y, radius, (r, g, b)) in pixels of the original (see
    :func:`colorbatch.hints.points_in_pixels`); ``reference``: a (1, GLOBAL_DIM) global hint
    (:func:`reference_hint`), ``colourfulness``: the reference's (:func:`reference_colourfulness`);
    ``chroma``: this image's colour strength (a number, as ``--chroma``), or None.
    """
    H, W = original_hw
    h, w = net_hw
    sy, sx = (h / max(1, H)), (w / max(1, W))
    ab = srgb_to_ab128([p[3] for p in points_px])
    pts = [(y * sy, x * sx, r * min(sx, sy), a, b) for (x, y, r, _), (a, b) in zip(points_px, ab)]
    amap, mask = points_to_maps([pts], (1, h, w)) if pts else (None, None)
    return Hints(amap, mask, reference, [pts] if pts else None, colourfulness, chroma)


# the refinement after the network (see refine)
SPREAD = 0.25        # spatial reach of a point hint: sigma as a fraction of the long side
L_SIGMA = 10.0       # lightness affinity: sigma in L* units
KEEP = 0.05          # how strongly far-away pixels keep the network's colour


def refine(ab, L100, hints: Hints, spread: float = SPREAD, l_sigma: float = L_SIGMA, keep: float = KEEP,
           match_chroma: bool = True):
    """Make the output agree with the hints, after the network.

    ``ab`` (1, 2, h, w) a*b*/128 predicted with the hints; ``L100`` (h, w) L* of the
    same size. Point hints: the difference between each hint's colour and the
    prediction over its disc is spread to pixels near it *and of similar lightness*
    (a Gaussian in space times a Gaussian in L*, normalised over the hints, fading
    to the network's own colour far away: an affinity interpolation after Levin et
    al. 2004). Global hint: the chroma is scaled so the mean chroma matches the
    reference's (within 0.5x..2x), or, when the reference's colourfulness is known, so the
    output's colourfulness (Hasler-Suesstrunk, on its sRGB) matches it (0.25x..4x).
    Returns the refined ``ab``.
    """
    import torch

    out = ab.clone()
    h, w = ab.shape[-2:]
    if match_chroma and hints is not None and hints.colourfulness is not None:
        out = out * _vividness_scale(out[0], L100, float(hints.colourfulness))
    elif match_chroma and hints is not None and hints.glob is not None and float(hints.glob[0, -1]) > 0:
        want = float(hints.glob[0, GLOBAL_DIM - 2])
        have = float(out[0].pow(2).sum(0).sqrt().mean())
        if have > 1e-4 and want > 0:
            out = out * min(2.0, max(0.5, want / have))
    L = torch.as_tensor(L100, dtype=torch.float32, device=ab.device).reshape(h, w)
    pts = (hints.points or [None])[0] if hints is not None else None
    if pts:
        sig = max(1.0, spread * max(h, w))
        ys = torch.arange(h, dtype=torch.float32, device=ab.device)[:, None]
        xs = torch.arange(w, dtype=torch.float32, device=ab.device)[None, :]
        num = torch.zeros(2, h, w, device=ab.device)
        den = torch.full((h, w), float(keep), device=ab.device)
        for y, x, r, a, b in pts:
            yi, xi, ri = int(round(y)), int(round(x)), max(0, int(round(r)))
            y0, y1, x0, x1 = max(0, yi - ri), min(h, yi + ri + 1), max(0, xi - ri), min(w, xi + ri + 1)
            if y0 >= y1 or x0 >= x1:
                continue
            delta = torch.tensor((a, b), device=ab.device) - out[0, :, y0:y1, x0:x1].mean(dim=(1, 2))
            Lh = L[y0:y1, x0:x1].mean()
            wgt = torch.exp(-((ys - y) ** 2 + (xs - x) ** 2) / (2 * sig * sig)) * \
                torch.exp(-((L - Lh) ** 2) / (2 * l_sigma * l_sigma))
            wgt[y0:y1, x0:x1] = 1e3  # the hint's own disc takes its colour
            num += wgt * delta[:, None, None]
            den += wgt
        out[0] = out[0] + num / den
    return out.clamp_(-1.0, 1.0)


def _vividness_scale(ab, L100, target: float, lo: float = 0.25, hi: float = 4.0, steps: int = 12) -> float:
    """The chroma scale s in [lo, hi] whose output (L*, s x a*b*) has colourfulness ``target``
    (bisection in log s; colourfulness grows with s)."""
    import math

    import numpy as np

    from colorbatch.metrics import colorfulness, lab_to_rgb, to_uint8

    step = max(1, int(max(ab.shape[-2:]) // 256))
    L = np.asarray(L100.detach().float().cpu().numpy() if hasattr(L100, "detach") else L100,
                   dtype=np.float32).reshape(ab.shape[-2:])[::step, ::step]
    a = (ab[:, ::step, ::step].detach().float().cpu().numpy() * 128.0).transpose(1, 2, 0)

    def cf(s):
        return colorfulness(to_uint8(lab_to_rgb(L, np.clip(a * s, -127, 127))))

    if cf(1.0) <= 0.5:
        return 1.0  # (near) gray output: nothing to scale
    lo_l, hi_l = math.log(lo), math.log(hi)
    for _ in range(steps):
        mid = 0.5 * (lo_l + hi_l)
        if cf(math.exp(mid)) < target:
            lo_l = mid
        else:
            hi_l = mid
    return math.exp(0.5 * (lo_l + hi_l))


def stack(per_image, size) -> Hints | None:
    """Per-image :class:`Hints` (batches of one, or None) -> one batch at the padded ``size``
    (Hp, Wp); maps are placed top-left (the network pads right/bottom). None when no image
    has a hint."""
    import torch

    if not any(h is not None and not h.empty for h in per_image):
        return None
    B = len(per_image)
    Hp, Wp = size
    ab = torch.zeros(B, 2, Hp, Wp)
    mask = torch.zeros(B, 1, Hp, Wp)
    glob = torch.zeros(B, GLOBAL_DIM)
    for i, h in enumerate(per_image):
        if h is None:
            continue
        if h.mask is not None:
            hh, ww = h.mask.shape[-2:]
            ab[i, :, :hh, :ww] = h.ab[0].cpu()
            mask[i, :, :hh, :ww] = h.mask[0].cpu()
        if h.glob is not None:
            glob[i] = h.glob[0].cpu()
    return Hints(ab, mask, glob)


def simulate_user_points(rgb, n: int, seed: int, radius_frac: float = 0.01):
    """N point hints a simulated user gives, from a colour original (H x W x 3 float 0-1):
    places uniformly at random (``seed``), each hint's colour the mean sRGB of a disc of
    radius ``radius_frac`` x the long side there. Returns ``(x, y, radius, (r, g, b))`` in
    pixels of the original, as :func:`colorbatch.hints.points_in_pixels` does."""
    import numpy as np

    rgb = np.asarray(rgb)
    H, W = rgb.shape[:2]
    rng = np.random.default_rng(seed)
    r = max(1.0, radius_frac * max(H, W))
    out = []
    for _ in range(int(n)):
        x, y = int(rng.integers(0, W)), int(rng.integers(0, H))
        y0, y1, x0, x1 = max(0, int(y - r)), min(H, int(y + r) + 1), max(0, int(x - r)), min(W, int(x + r) + 1)
        yy, xx = np.ogrid[y0:y1, x0:x1]
        disc = (yy - y) ** 2 + (xx - x) ** 2 <= r * r
        c = np.clip(rgb[y0:y1, x0:x1][disc].astype(np.float64).mean(axis=0), 0, 1) * 255.0
        out.append((float(x), float(y), r, tuple(int(v + 0.5) for v in c)))
    return out
