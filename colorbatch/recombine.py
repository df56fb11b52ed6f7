"""Recombination: full-resolution L* with a*b* upsampled from network size, to 8-bit sRGB (CPU tables or the device)."""
from __future__ import annotations

import numpy as np

from colorbatch.images import L_SCALE, quantize_L

TILE_PIXELS = 1 << 21  # pixels per row tile when recombining (~2 MP)
CPU_TILE_PIXELS = 1 << 16  # pixels per tile of the CPU recombination kernel (fits the caches)


def u16_tensor(arr):
    """uint16 numpy -> int32 tensor (torch has few uint16 ops)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(arr).view(np.int16)).to(torch.int32).bitwise_and_(0xFFFF)


def upsample_rows(ab, H: int, W: int, y0: int, y1: int):
    """Rows [y0, y1) of the bilinear (align_corners=False) upsampling of ``ab``
    (2, h, w) to (2, H, W), without materialising the whole result."""
    import torch
    import torch.nn.functional as F

    h, w = ab.shape[-2:]
    if y0 == 0 and y1 == H:
        return F.interpolate(ab[None], size=(H, W), mode="bilinear", align_corners=False)[0]
    if w != W:
        ab = F.interpolate(ab[None], size=(h, W), mode="bilinear", align_corners=False)[0]
    if h == H:
        return ab[:, y0:y1]
    ys = (torch.arange(y0, y1, device=ab.device, dtype=torch.float32) + 0.5) * (h / H) - 0.5
    ys = ys.clamp_(min=0.0)
    i0 = ys.floor().long().clamp_(max=h - 1)
    i1 = (i0 + 1).clamp_(max=h - 1)
    wgt = (ys - i0.float()).view(1, -1, 1)
    a0 = ab.index_select(1, i0)
    a1 = ab.index_select(1, i1)
    return a0 + (a1 - a0) * wgt


def compose_full(Lq, ab_small, device, want_ab: bool = True):
    """Recombine full-resolution L* with low-resolution a*b*/128.

    Lq: H x W uint16 (quantised L*) or float32 L* numpy array.
    ab_small: (2, h, w) tensor of a*b*/128 at network resolution (any device), or a numpy
    array (onnxruntime on the CPU: then torch is not imported where the kernels are loaded).
    Returns (rgb uint8 H x W x 3, ab float32 H x W x 2 or None).
    On the CPU: the fused kernel (:func:`compose_full_kernel`) where the kernels are
    loaded, else the torch tables (:func:`compose_full_cpu`); on other devices torch
    in row tiles.
    """
    from colorbatch.device import device_type

    if device_type(device) == "cpu":
        from colorbatch import kernels

        if kernels.ready():  # loaded (colorize loads them for more than one image)
            return compose_full_kernel(Lq, ab_small, want_ab)
        import torch

        if isinstance(ab_small, np.ndarray):  # from onnxruntime
            ab_small = torch.from_numpy(ab_small)
        return compose_full_cpu(Lq, ab_small, want_ab)
    import torch

    H, W = Lq.shape
    rgb = np.empty((H, W, 3), dtype=np.uint8)
    ab_full = np.empty((H, W, 2), dtype=np.float32) if want_ab else None

    def L_rows(y0, y1):
        if Lq.dtype == np.uint16:
            return u16_tensor(Lq[y0:y1]).to(device).float().div_(L_SCALE)
        return torch.from_numpy(np.ascontiguousarray(Lq[y0:y1], dtype=np.float32)).to(device)

    for y0, y1, tile, ab in device_tiles(L_rows, ab_small.to(device=device), H, W):
        rgb[y0:y1] = tile.cpu().numpy()
        if want_ab:
            ab_full[y0:y1] = ab.permute(1, 2, 0).cpu().numpy()
    return rgb, ab_full


def device_tiles(L_rows, ab_small, H: int, W: int):
    """The recombination on a device (torch), in row tiles of about :data:`TILE_PIXELS`:
    yields ``(y0, y1, rgb, ab)``, the rows' uint8 sRGB (rows, W, 3) and upsampled a*b*
    (2, rows, W) on ``ab_small``'s device. ``L_rows(y0, y1)``: those rows' float32 L*
    there; ``ab_small``: (2, h, w) a*b*/128."""
    import torch

    from colorbatch.color import lab_to_srgb8_keep_L

    ab_small = ab_small.to(dtype=torch.float32) * 128.0
    rows = max(1, TILE_PIXELS // max(1, W))
    for y0 in range(0, H, rows):
        y1 = min(H, y0 + rows)
        ab = upsample_rows(ab_small, H, W, y0, y1)
        yield y0, y1, lab_to_srgb8_keep_L(L_rows(y0, y1), ab[0], ab[1]), ab


def compose_full_kernel(Lq, ab_small, want_ab: bool):
    """CPU recombination in one fused pass (:func:`colorbatch.kernels.rgb8_from_lab`):
    bilinear upsampling, LAB -> sRGB keeping L*, 8-bit quantisation per row, no
    full-size float temporaries (the a*b* output only when ``want_ab``)."""
    from colorbatch import kernels

    H, W = Lq.shape
    # h x w x 2, C order (the compiled variant warm_up loads); small: network size
    if isinstance(ab_small, np.ndarray):  # (2, h, w) from onnxruntime
        ab = np.ascontiguousarray(ab_small.transpose(1, 2, 0), dtype=np.float32)
    else:
        import torch

        ab = np.ascontiguousarray(ab_small.detach().to(device="cpu", dtype=torch.float32).permute(1, 2, 0).numpy())
    ab_full = np.empty((H, W, 2), dtype=np.float32) if want_ab else None
    # one thread: in the pipeline the network and the decoding workers use the other cores
    rgb = kernels.rgb8_from_lab(Lq, ab, ab_scale=128.0, ab_out=ab_full, parallel=False)
    return rgb, ab_full


_FY_LUT = None


def _fy_Y_luts():
    """Tables indexed by quantised L* (uint16): fy = (L*+16)/116 and 65535 * Y, Y = f^-1(fy)."""
    global _FY_LUT
    if _FY_LUT is None:
        import torch

        from colorbatch.color_formulas import lab_f_inv

        L = torch.arange(65536, dtype=torch.float64) / L_SCALE
        fy = (L + 16.0) / 116.0
        Ys = lab_f_inv(fy.clone()).clamp_(0.0, 1.0).mul_(65535.0)  # in the units srgb8_from_f takes
        _FY_LUT = (fy.float().numpy(), Ys.float().numpy())
    return _FY_LUT


def compose_full_cpu(Lq, ab_small, want_ab: bool):
    """CPU recombination in row tiles: fy and Y of each pixel by table lookup on the
    quantised L*, a*/500 and -b*/200 upsampled directly (no separate scaling
    passes), then :func:`colorbatch.color.srgb8_from_f`."""
    import torch
    import torch.nn.functional as F

    from colorbatch.color import srgb8_from_f

    if Lq.dtype != np.uint16:
        Lq = quantize_L(np.asarray(Lq, dtype=np.float32))
    H, W = Lq.shape
    rgb = np.empty((H, W, 3), dtype=np.uint8)
    ab_full = np.empty((H, W, 2), dtype=np.float32) if want_ab else None
    fy_lut, Y_lut = _fy_Y_luts()
    ab = ab_small.to(device="cpu", dtype=torch.float32)
    # a*b*/128 -> (a*/500, -b*/200): f(X) = fy + a*/500, f(Z) = fy - b*/200
    scale = torch.tensor([128.0 / 500.0, -128.0 / 200.0]).view(2, 1, 1)
    ab = (ab * scale).contiguous()
    h, w = ab.shape[-2:]
    if w != W:  # the width once; rows per tile below
        ab = F.interpolate(ab[None], size=(h, W), mode="bilinear", align_corners=False)[0]
    # rows: bilinear (align_corners=False) weights computed once, as upsample_rows does
    ys = ((torch.arange(H, dtype=torch.float32) + 0.5) * (h / H) - 0.5).clamp_(min=0.0)
    i0 = ys.floor().long().clamp_(max=h - 1)
    i1 = (i0 + 1).clamp_(max=h - 1)
    wy = (ys - i0.float()).view(1, H, 1)
    # small tiles: the ~20 passes of the kernel stay in the CPU caches
    rows = max(1, CPU_TILE_PIXELS // max(1, W))
    for y0 in range(0, H, rows):
        y1 = min(H, y0 + rows)
        idx = Lq[y0:y1].astype(np.intp)
        fy = torch.from_numpy(np.take(fy_lut, idx))
        Y = torch.from_numpy(np.take(Y_lut, idx))
        del idx
        up = ab.index_select(1, i1[y0:y1])
        up.sub_(a0 := ab.index_select(1, i0[y0:y1])).mul_(wy[:, y0:y1]).add_(a0)
        del a0
        if want_ab:
            ab_full[y0:y1, :, 0] = (up[0] * (500.0 / 1.0)).numpy()
            ab_full[y0:y1, :, 1] = (up[1] * -200.0).numpy()
        fx = up[0].add_(fy)
        fz = up[1].add_(fy)
        del up
        rgb[y0:y1] = srgb8_from_f(Y, fx, fz).numpy()
    return rgb, ab_full
