"""A cheap U-Net decoder and the full colorization network.

Decoder: starting from the coarsest encoder map, each stage upsamples by 2,
adds a 1x1 lateral projection of the encoder's skip at that stride, and applies
one 3x3 conv (+BN+ReLU). It stops at ``out_stride`` (2 by default; 4 is cheaper)
and upsamples bilinearly to the input size (a*b* are smooth). Two heads:

``regress``   a 3x3 conv and tanh predict a*b*/128 directly (trained with MSE & co.).
``classify``  a 1x1 conv predicts logits over a 22 x 22 grid of a*b* bins (10 units
              wide, centres -105..105; see :mod:`colorbatch.models.bins`); the
              output is the mean of the distribution sharpened by a temperature
              ``T`` (``softmax(logits / T)``, Zhang et al.'s annealed mean): ``T = 1``
              is the plain mean (the least-squares choice, pale where the model is
              unsure), lower ``T`` is more vivid. The temperature is a forward
              argument, calibrated after training and stored in the checkpoint.

``context`` (optional, arch ``"context": true``): image-level context after Iizuka et al.
2016 ("Let there be Color!"): the mean and spread of the coarsest encoder map over the
whole image go through a small MLP whose output biases every stage, so each pixel's
colour can depend on what the whole photo shows (a sunset, a forest, a studio), whatever
the receptive field. Its last layer starts at zero, so it can be added to a trained model
(``init_from``) and start as a no-op.

The naive alternative (3x3 convs on concatenated
skips) costs 2-3x a ResNet-50 encoder on a CPU; this one is a fraction of it
(``benchmarks/colorize.py`` prints the ratio).
"""
from __future__ import annotations

DEFAULT_WIDTHS = (256, 128, 64, 48, 32)  # at strides 32, 16, 8, 4, 2


def _classes():
    import torch
    import torch.nn.functional as F
    from torch import nn

    def conv_bn_relu(cin, cout, k):
        return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True))

    class UNetDecoder(nn.Module):
        def __init__(self, channels, strides, widths=DEFAULT_WIDTHS, out_stride=2, head="regress", hints=False,
                     context=False):
            super().__init__()
            if out_stride not in strides:
                raise ValueError(f"out_stride {out_stride} is not one of the encoder strides {strides}")
            self.strides = list(strides)
            self.out_stride = out_stride
            n = len(channels)
            widths = list(widths)[:n]
            if len(widths) < n:
                raise ValueError(f"decoder needs {n} widths, got {len(widths)}")
            # index 0 = coarsest
            chans = list(reversed(channels))
            strs = list(reversed(strides))
            self.n_stages = strs.index(out_stride) + 1
            self.lateral = nn.ModuleList(
                [nn.Conv2d(chans[i], widths[i], 1, bias=False) for i in range(self.n_stages)]
            )
            self.reduce = nn.ModuleList(
                [nn.Conv2d(widths[i - 1], widths[i], 1, bias=False) for i in range(1, self.n_stages)]
            )
            self.fuse = nn.ModuleList([conv_bn_relu(widths[i], widths[i], 3) for i in range(self.n_stages)])
            self.head_kind = head
            self.accepts_hints = bool(hints)
            self._stage_widths = list(widths[:self.n_stages])
            self.has_context = bool(context)
            if context:  # zero-initialised: a model gains it as a no-op (see the module docstring)
                self.context = nn.Sequential(nn.Linear(2 * chans[0], 256), nn.ReLU(inplace=True),
                                             nn.Linear(256, sum(self._stage_widths)))
                nn.init.zeros_(self.context[-1].weight)
                nn.init.zeros_(self.context[-1].bias)
            if hints:  # see colorbatch.models.hints; zero-initialised so hints start as a no-op
                from colorbatch.models.hints import GLOBAL_DIM

                self.hint_local = nn.ModuleList(
                    [nn.Conv2d(3, widths[i], 3, padding=1) for i in range(self.n_stages)])
                self.hint_global = nn.Sequential(nn.Linear(GLOBAL_DIM, 128), nn.ReLU(inplace=True),
                                                 nn.Linear(128, sum(widths[:self.n_stages])))
                for m in list(self.hint_local) + [self.hint_global[-1]]:
                    nn.init.zeros_(m.weight)
                    nn.init.zeros_(m.bias)
            if head == "classify":
                from colorbatch.models.bins import NBINS

                self.head = nn.Conv2d(widths[self.n_stages - 1], NBINS, 1)
            elif head == "regress":
                self.head = nn.Conv2d(widths[self.n_stages - 1], 2, 3, padding=1)
            else:
                raise ValueError(f"unknown head {head!r} (regress or classify)")

        def _hint_terms(self, hints, i, like):
            """What hints add to stage ``i`` (shaped like ``like``), or 0."""
            if not self.accepts_hints:
                return 0
            from colorbatch.models.hints import GLOBAL_DIM, pool_local

            # no hint = all-zero maps and vector, as in training (so the biases still apply)
            if hints is not None and hints.mask is not None:
                add = self.hint_local[i](pool_local(hints.ab, hints.mask, like.shape[-2:]).to(like.dtype))
            else:
                add = self.hint_local[i].bias.to(like.dtype)[None, :, None, None]
            if hints is not None and hints.glob is not None:
                g = self.hint_global(hints.glob.to(like.dtype))
            else:
                g = self.hint_global(like.new_zeros(1, GLOBAL_DIM))
            return add + self._stage_bias(g, i, like)

        def _stage_bias(self, vec, i, like):
            """Stage ``i``'s part of a (B, sum of stage widths) bias vector, shaped to add to ``like``;
            0 for no vector."""
            if vec is None:
                return 0
            lo = sum(self._stage_widths[:i])
            return vec[:, lo:lo + like.shape[1], None, None].to(like.dtype)

        def features(self, feats, hints=None):
            feats = list(reversed(feats))
            ctx = None
            if self.has_context:
                top = feats[0].float()
                mean = top.mean((2, 3))
                spread = ((top - mean[..., None, None]) ** 2).mean((2, 3)).add(1e-6).sqrt()
                ctx = self.context(torch.cat((mean, spread), 1).to(feats[0].dtype))
            x0 = self.lateral[0](feats[0])
            x = self.fuse[0](x0 + self._hint_terms(hints, 0, x0) + self._stage_bias(ctx, 0, x0))
            for i in range(1, self.n_stages):
                skip = self.lateral[i](feats[i])
                x = F.interpolate(self.reduce[i - 1](x), size=skip.shape[-2:], mode="bilinear",
                                  align_corners=False)
                x = self.fuse[i](x + skip + self._hint_terms(hints, i, skip) + self._stage_bias(ctx, i, skip))
            return x

        def logits(self, feats, sample: int = 0, hints=None):
            """classify head: (B, NBINS, h, w) bin logits at ``out_stride``.

            ``sample`` > 0 (training): the head runs on that many random positions per
            image only -> ``(logits (B, NBINS, sample, 1), positions (B, sample), (h, w))``;
            the cross-entropy over all bins is the costly part, and neighbouring
            positions teach nearly the same thing (after Larsson et al.'s sparse
            hypercolumn training).
            """
            x = self.features(feats, hints)
            if not sample or sample >= x.shape[-2] * x.shape[-1]:
                return self.head(x)
            B, C, h, w = x.shape
            pos = torch.randint(0, h * w, (B, int(sample)), device=x.device)
            xs = x.flatten(2).gather(2, pos[:, None, :].expand(-1, C, -1))
            return self.head(xs[..., None]), pos, (h, w)

        def forward(self, feats, size, temperature: float = 1.0, hints=None):
            x = self.head(self.features(feats, hints))
            if self.head_kind == "classify":
                from colorbatch.models.bins import expected_ab

                ab = expected_ab(x, temperature)
            else:
                ab = torch.tanh(x)
            return F.interpolate(ab, size=size, mode="bilinear", align_corners=False)

    class ColorizationNet(nn.Module):
        """L*/100 (B,1,H,W) -> a*b*/128 (B,2,H,W) through tanh.

        ``arch`` (a JSON-able dict) is what a checkpoint stores to rebuild it.
        A frozen encoder stays in eval mode (BatchNorm statistics untouched)
        even while the model trains.
        """

        def __init__(self, encoder, arch: dict, widths=DEFAULT_WIDTHS, out_stride=2):
            super().__init__()
            self.encoder = encoder
            self.decoder = UNetDecoder(encoder.channels, encoder.strides, widths, out_stride,
                                       head=arch.get("head", "regress"), hints=bool(arch.get("hints")),
                                       context=bool(arch.get("context")))
            self.arch = arch
            self.multiple = max(encoder.strides)

        @property
        def encoder_frozen(self) -> bool:
            return bool(getattr(self.encoder, "frozen", False))

        def train(self, mode: bool = True):
            super().train(mode)
            if self.encoder_frozen:
                self.encoder.eval()
            return self

        @property
        def accepts_hints(self) -> bool:
            return self.decoder.accepts_hints

        def _check_hints(self, hints):
            if hints is None or hints.empty:
                return None
            if not self.accepts_hints:
                from colorbatch.errors import ColorbatchError

                raise ColorbatchError(
                    f"this model ({self.arch.get('name', '?')}) takes no colour hints: use a hint-aware model "
                    "(the shipped default, or one trained with hints = true) or drop --hints/--reference")
            return hints

        @property
        def head(self) -> str:
            return self.decoder.head_kind

        def _pad(self, L01):
            h, w = L01.shape[-2:]
            m = self.multiple
            ph, pw = (-h) % m, (-w) % m
            if ph or pw:
                mode = "reflect" if ph < h and pw < w else "replicate"
                return F.pad(L01, (0, pw, 0, ph), mode=mode)
            return L01

        def forward(self, L01, temperature: float = 1.0, logits: bool = False, sample: int = 0, hints=None):
            """a*b*/128 at the input size; ``logits=True`` (classify head, training): the
            bin logits at ``out_stride`` instead (input sizes: multiples of 32; ``sample``:
            see ``UNetDecoder.logits``). ``hints``: a :class:`colorbatch.models.hints.Hints`
            at the input size (refused by a model without hint inputs)."""
            hints = self._check_hints(hints)
            if logits:
                if self.head != "classify":
                    raise ValueError("logits=True needs a model with the classify head")
                return self.decoder.logits(self.encoder(L01), sample, hints)
            h, w = L01.shape[-2:]
            x = self._pad(L01)
            if hints is not None:
                hints = hints.pad(x.shape[-1] - w, x.shape[-2] - h)
            ab = self.decoder(self.encoder(x), x.shape[-2:], temperature, hints)
            if x.shape[-2:] != (h, w):
                ab = ab[..., :h, :w]
            return ab


    return UNetDecoder, ColorizationNet


def build_decoder(channels, strides, widths=DEFAULT_WIDTHS, out_stride=2):
    return _classes()[0](channels, strides, widths, out_stride)


def build_network(encoder, arch: dict, widths=DEFAULT_WIDTHS, out_stride=2):
    return _classes()[1](encoder, arch, widths, out_stride)
