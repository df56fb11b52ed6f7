"""The `train` step: learn a*b* from L* on the colour images the stream brings.

It consumes every item (paths; pixels are decoded in DataLoader workers) and
yields none. The model is written under ``checkpoint_dir`` (``last`` every
epoch and on stop, ``best`` by validation loss), the finished one is published
to the model cache (so ``colorbatch colorize`` finds it) and set as
``ctx.state.checkpoint`` for a later ``colorize`` step in the same recipe.
The loop itself is :mod:`colorbatch.training.loop`.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from colorbatch.errors import ColorbatchError
from colorbatch.steps import Step, StepDef


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field("efficientnet-lite0", description="Encoder: efficientnet-lite0 | resnet50 | one a plugin registers (a '-unet' suffix is accepted).")
    encoder_weights: str = Field("imagenet", description="imagenet (offline weights of the installed packages) | none (random) | a .pth/.safetensors file.")
    freeze_encoder: bool = Field(True, description="Keep the encoder fixed (BatchNorm in eval mode); train only the decoder.")
    epochs: int = Field(10, ge=1, description="Passes over the training images.")
    batch_size: int = Field(16, ge=1, description="Images per step (per process under torchrun).")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate of AdamW.")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay.")
    schedule: Literal["cosine", "onecycle", "constant"] = Field("cosine", description="Learning-rate schedule over all steps (cosine after warmup_steps; onecycle: 30% warm-up then cosine).")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps (cosine and constant).")
    loss: Literal["mse", "l1", "huber", "rebalanced", "classify"] = Field("mse", description="mse on a*b*/128 (reference) | l1 | huber | rebalanced (class-rebalanced MSE against desaturation) | classify (cross-entropy over a*b* bins; the model outputs the calibrated annealed mean).")
    sample_pixels: int = Field(512, ge=0, description="classify: positions per crop (at out_stride) the loss is computed on in each step; 0 = all. Fewer is faster; neighbours teach nearly the same.")
    rebalance: bool = Field(False, description="classify: weight pixels by the rarity of their colour (as the rebalanced loss does).")
    hints: bool = Field(False, description="Train a hint-aware model: the decoder also takes colour hints (points and a reference's global hint), simulated from the truth during training (often none, so automatic quality holds). colorize --hints/--reference need such a model.")
    hint_p_none: float = Field(0.5, ge=0, le=1, description="hints: probability that a training crop gets no point hint.")
    hint_p_global: float = Field(0.2, ge=0, le=1, description="hints: probability that a training crop gets the global hint of its own truth.")
    hint_lr_scale: float = Field(10.0, gt=0, description="hints: learning-rate multiplier of the hint inputs (they start at zero and see sparse signal).")
    context: bool = Field(False, description="Give the decoder image-level context: the whole photo's pooled encoder features bias every stage (Iizuka et al. 2016), so colours can follow the kind of scene. Starts as a no-op, so it can be added to a trained model with init_from.")
    init_from: Optional[str] = Field(None, description="Start from this checkpoint's weights (same encoder and head; e.g. fine-tune the shipped default with hints = true); 'shipped' = the default model. Tensors it lacks (new hint inputs) keep their initialisation.")
    out_stride: Literal[2, 4, 8] = Field(2, description="Resolution of the decoder's output (a*b* are upsampled from it): 2 | 4 (cheaper) | 8.")
    calibrate: bool = Field(True, description="After training, fit the colour strength (annealing temperature and chroma scale) on the validation images and store it in the checkpoint (colorize --chroma auto uses it).")
    calibrate_size: int = Field(384, ge=64, description="Long side at which validation images are colorized for calibration.")
    rebalance_lambda: float = Field(0.5, ge=0, le=1, description="rebalanced: weight of the uniform distribution mixed into the a*b* prior (Zhang et al.'s lambda).")
    rebalance_images: int = Field(256, ge=1, description="rebalanced: training images sampled to estimate the a*b* prior.")
    size: int = Field(224, ge=16, description="Training crop size in pixels (multiples of 32 recommended).")
    crop_scale_min: float = Field(0.25, gt=0, le=1, description="Smallest area fraction of a random resized crop.")
    repeat: int = Field(1, ge=1, description="Show each training image this many times per epoch (different crops); for tiny data sets.")
    workers: Optional[int] = Field(None, ge=0, description="DataLoader worker processes decoding images (default: cores - 1, at most 4).")
    threads: Optional[int] = Field(None, ge=1, description="Intra-op CPU threads (default: torch's; under torchrun cores / processes).")
    val_source: Optional[str] = Field(None, description="Validation images (a folder, glob, list file or ILSVRC split); default: hold out val_fraction of the training images.")
    val_layout: str = Field("auto", description="Layout of val_source, as the load step's layout.")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="Fraction of training images held out for validation when val_source is unset (fixed by seed).")
    val_size: Optional[int] = Field(None, ge=16, description="Validation centre-crop size (default: size).")
    seed: int = Field(0, description="Seed for initialisation, data order, crops and the validation split.")
    max_steps: Optional[int] = Field(None, ge=1, description="Stop after this many optimizer steps in total (quick runs).")
    time_budget: Optional[float] = Field(None, gt=0, description="Stop training after this many seconds (then validate and save); the learning-rate schedule is compressed to end within it.")
    grad_clip: Optional[float] = Field(1.0, gt=0, description="Clip the gradient norm to this value (unset: no clipping).")
    resume: bool = Field(False, description="Continue exactly from checkpoint_dir/last (also: colorbatch run --resume).")
    device: str = Field("auto", description="auto | cpu | cuda | mps (auto: cuda, then mps, then cpu).")
    amp: Literal["auto", "off"] = Field("auto", description="auto: bf16 autocast on CUDA (fp32 elsewhere); off: fp32 everywhere.")
    gray_threshold: float = Field(0.02, ge=0, description="Skip sources whose mean chroma (max-min of R,G,B) is below this: already gray.")
    checkpoint_dir: str = Field("{run_dir}/checkpoints", description="Where last/best checkpoints (.safetensors + .json + .state.pt) go.")
    log: str = Field("{run_dir}/train_log.jsonl", description="Per-epoch (and every log_every steps) training log.")
    log_format: Literal["jsonl", "csv"] = Field("jsonl", description="Format of the training log.")
    log_every: int = Field(10, ge=0, description="Also log the loss every N steps (0: epochs only).")
    publish: Union[bool, Literal["if-better"]] = Field(True, description="Copy the finished model into the model cache, where colorize finds it (true); if-better: only if it beats the model colorize would use now on the validation photos (mean PSNR), so a short demo run never makes the default worse; false: never.")


def _val_items(options: Options, ctx) -> list:
    """Enumerate ``val_source`` with the load step's own logic."""
    from colorbatch import registry

    load = registry.steps(ctx.pm).get("load")
    if load is None:
        raise ColorbatchError("train: val_source needs the load step, which is not registered")
    opts = load.options()(source=options.val_source, layout=options.val_layout)
    return load.factory(opts, ctx).items()


class TrainStep(Step):
    def run(self, items: Iterable) -> Iterator:
        from colorbatch.training.data import source_of, split_validation

        o = self.options
        sources, labels = [], []
        for item in items:
            if item.is_marker:
                continue
            src = source_of(item)
            if src is None:
                self.ctx.fail(item, "train: item has neither a file nor decoded colour pixels")
                continue
            sources.append(src)
            labels.append(item.label)
        if not sources:
            raise ColorbatchError("train: no training images; check the load step's source")
        if o.val_source:
            val_items = _val_items(o, self.ctx)
            val = [s for s in (source_of(it) for it in val_items) if s is not None]
            train = sources
            note = f" ({len(val)} validation images from {o.val_source})"
        else:
            tr, va = split_validation(len(sources), o.val_fraction, o.seed)
            train, val = [sources[i] for i in tr], [sources[i] for i in va]
            note = f" + {len(val)} held out for validation (seed {o.seed})" if val else " (no validation)"
        from colorbatch.training.loop import Trainer

        Trainer(o, self.ctx, train, val, note).run()
        return
        yield  # a generator that yields nothing: train consumes the stream


STEP = StepDef(
    name="train",
    options=lambda: Options,
    factory=TrainStep,
    help="Train the colorization model on the colour images of the stream (checkpoints, logs, resume, DDP).",
    path_options=("val_source", "checkpoint_dir", "log"),
    produces=("checkpoint",),
)
