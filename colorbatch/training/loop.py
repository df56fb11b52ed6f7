"""The training loop behind the ``train`` step.

One :class:`Trainer` per step. It builds the model, the loss, AdamW and the
learning-rate schedule; trains epoch by epoch on crops decoded in DataLoader
workers; validates; writes ``last`` (every epoch and on stop) and ``best`` (by
validation loss) checkpoints; logs each epoch; and stops cleanly on Ctrl-C,
SIGTERM, ``max_steps`` or ``time_budget``. Resuming restores everything the
next step depends on, so a resumed run computes the same losses as one that
was never stopped. Under torchrun it uses DDP; only rank 0 writes files.
"""
from __future__ import annotations

import json
import math
import os
import random
import signal
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from colorbatch.errors import ColorbatchError
from colorbatch.training import distributed as D
from colorbatch.training.data import ColorDataset, EpochSampler, collate
from colorbatch.training.losses import ab_histogram, make_loss, rebalance_weights
from colorbatch.training.checkpoints import CheckpointsMixin
from colorbatch.training.schedule import LRSchedule  # noqa: F401 - re-exported


def _worker_init(_worker_id: int) -> None:
    # the main process handles Ctrl-C / SIGTERM and shuts workers down itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(1)


class Trainer(CheckpointsMixin):
    def __init__(self, opts, ctx, train_sources: list, val_sources: list, val_split_note: str = ""):
        self.o, self.ctx = opts, ctx
        self.train_sources, self.val_sources = train_sources, val_sources
        self.val_note = val_split_note
        self.stop_reason: str | None = None
        self.skipped: dict[int, str] = {}
        self.ckpt_dir = Path(opts.checkpoint_dir)
        self.log_path = Path(opts.log) if opts.log else None

    # ------------------------------------------------------------------ setup
    def _setup_device(self):
        from colorbatch.device import pick_device

        device = torch.device(pick_device(self.o.device))
        device = D.local_device(device)
        self.distributed = D.setup(device)
        self.rank = D.env_rank() if self.distributed else 0
        self.world = D.env_world_size() if self.distributed else 1
        self.is_main = self.rank == 0
        if self.o.threads:
            torch.set_num_threads(int(self.o.threads))
        elif self.distributed and device.type == "cpu":
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.world))
        self.device = device
        self.amp = device.type == "cuda" and self.o.amp != "off"
        self.ctx.state.device = str(device)

    def _build(self):
        from colorbatch.models import build_model

        o = self.o
        random.seed(o.seed)
        np.random.seed(o.seed)
        torch.manual_seed(o.seed)
        self.classify = o.loss == "classify"
        model = build_model(o.model, o.encoder_weights, o.freeze_encoder, pm=self.ctx.pm,
                            head="classify" if self.classify else "regress", out_stride=o.out_stride,
                            hints=o.hints, context=o.context)
        if o.init_from:
            from colorbatch.training.finish import init_weights

            self.ctx.log(init_weights(model, o.init_from))
        model.to(self.device)
        if self.device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ColorbatchError("train: the model has no trainable parameters")
        # the hint inputs start at zero and see sparse signal: they learn at hint_lr_scale x lr
        fast = [p for n, p in model.named_parameters() if p.requires_grad and ".hint_" in f".{n}"]
        slow = [p for p in params if all(p is not q for q in fast)]
        groups = [{"params": slow}] + ([{"params": fast, "lr": o.lr * o.hint_lr_scale}] if fast else [])
        self.opt = torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)
        self.steps_per_epoch = math.ceil(
            EpochSampler(len(self.train_sources), world_size=self.world, repeat=o.repeat).per_rank() / o.batch_size
        )
        # the schedule spans the planned epochs; max_steps and time_budget only stop early,
        # so a run stopped by them and resumed follows the same learning rates
        total = self.steps_per_epoch * o.epochs
        self.schedule = LRSchedule(o.schedule, total, o.warmup_steps)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self.schedule)
        self.net = D.wrap(model, self.device)

    def _lab(self, rgb: torch.Tensor):
        from colorbatch.color import rgb_to_lab

        lab = rgb_to_lab(rgb.to(self.device, non_blocking=True).float())
        L01 = lab[:, :1] / 100.0
        if self.device.type == "cuda":
            L01 = L01.contiguous(memory_format=torch.channels_last)
        return L01, lab[:, 1:] / 128.0

    def _loader(self, dataset, sampler):
        cuda = self.device.type == "cuda"
        workers = int(self.o.workers if self.o.workers is not None else min(4, max(0, (os.cpu_count() or 1) - 1)))
        return torch.utils.data.DataLoader(
            dataset, batch_size=self.o.batch_size, sampler=sampler, num_workers=workers,
            collate_fn=collate, pin_memory=cuda, worker_init_fn=_worker_init if workers else None,
            prefetch_factor=2 if workers else None,
            generator=torch.Generator().manual_seed(self.o.seed),  # leaves the global RNG alone
        )

    def _loss_weights(self):
        """Rebalancing weights from the a*b* histogram of a sample of training crops."""
        o = self.o
        n = min(len(self.train_sources), o.rebalance_images)
        idx = sorted(random.Random(o.seed).sample(range(len(self.train_sources)), n))[self.rank:: self.world]
        ds = ColorDataset([self.train_sources[i] for i in idx], min(o.size, 128), train=False,
                          gray_threshold=o.gray_threshold)
        counts = torch.zeros(22 * 22, dtype=torch.float64)
        with torch.no_grad():
            for batch in self._loader(ds, list(range(len(ds)))):
                if batch["rgb"] is not None:
                    _, ab = self._lab(batch["rgb"])
                    counts += ab_histogram(ab.float().cpu() * 128.0)
        counts = torch.tensor(D.all_reduce_sum(counts.tolist(), self.device), dtype=torch.float64)
        w = rebalance_weights(counts.numpy(), lam=o.rebalance_lambda)
        self.ctx.log(f"rebalanced loss: a*b* prior from {n} images; weights {w.min():.2f}..{w.max():.2f}")
        return w

    # ------------------------------------------------------------------ stop handling
    def _install_signals(self):
        self._old = {}
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, frame):
            if self.stop_reason == "signal":  # second Ctrl-C: stop now
                raise KeyboardInterrupt
            self.stop_reason = "signal"
            self.ctx.log(f"{signal.Signals(signum).name}: stopping after this step and saving a checkpoint "
                         "(press Ctrl-C again to stop at once)")

        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, handler)

    def _restore_signals(self):
        for sig, old in getattr(self, "_old", {}).items():
            signal.signal(sig, old)

    def _should_stop(self) -> bool:
        o = self.o
        if self.stop_reason is None:
            if o.max_steps and self.step >= o.max_steps:
                self.stop_reason = "max_steps"
            elif o.time_budget and time.perf_counter() - self.t_start >= o.time_budget:
                self.stop_reason = "time_budget"
        if self.distributed:  # every rank stops at the same step, for the same reason
            reasons = ("signal", "max_steps", "time_budget")
            votes = D.all_reduce_sum([1.0 if self.stop_reason == r else 0.0 for r in reasons], self.device)
            if self.stop_reason is None:
                self.stop_reason = next((r for r, v in zip(reasons, votes) if v > 0), None)
        return self.stop_reason is not None

    # ------------------------------------------------------------------ logging
    def _log(self, record: dict) -> None:
        if not self.is_main or self.log_path is None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.o.log_format == "csv":
            import csv

            fields = ["kind", "epoch", "step", "train_loss", "val_loss", "val_mse", "lr", "seconds",
                      "images_per_s", "partial", "loss"]
            new = not self.log_path.exists()
            with open(self.log_path, "a", newline="", encoding="utf-8") as f:
                w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
                if new:
                    w.writeheader()
                w.writerow(record)
        else:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------ validation
    def validate(self) -> tuple[float | None, float | None]:
        """(validation loss with the training loss, validation ab MSE), averaged over images."""
        if not self.val_sources:
            return None, None
        o = self.o
        ds = ColorDataset(self.val_sources, o.val_size or o.size, train=False, gray_threshold=o.gray_threshold)
        sampler = EpochSampler(len(ds), shuffle=False, rank=self.rank, world_size=self.world)
        total = [0.0, 0.0, 0.0]
        self.model.eval()
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else nullcontext()
        with torch.no_grad():
            for batch in self._loader(ds, sampler):
                self._note_skips(batch, self.val_sources, "val")
                if batch["rgb"] is None:
                    continue
                L01, target = self._lab(batch["rgb"])
                with amp:  # the plain module: no DDP collectives, so ranks may skip batches here
                    pred = self.model(L01, logits=True) if self.classify else self.model(L01)
                n = target.shape[0]
                total[0] += float(self.loss_fn(pred.float(), target)) * n
                if self.classify:
                    from colorbatch.models.bins import expected_ab

                    pred = torch.nn.functional.interpolate(expected_ab(pred), size=target.shape[-2:],
                                                           mode="bilinear", align_corners=False)
                total[1] += float(torch.nn.functional.mse_loss(pred.float(), target)) * n
                total[2] += n
        self.model.train()
        s = D.all_reduce_sum(total, self.device)
        return (s[0] / s[2], s[1] / s[2]) if s[2] else (None, None)

    def _note_skips(self, batch, sources, split: str) -> None:
        for index, why, reason in batch["skipped"]:
            key = (split, index)
            if key in self.skipped:
                continue
            self.skipped[key] = why
            if why == "error" and self.is_main:
                self.ctx.warn(f"train: skipped {sources[index]}: {reason}")

    # ------------------------------------------------------------------ main
    def run(self) -> Path:
        o = self.o
        self._setup_device()
        self._build()
        self.epoch, self.batch_in_epoch, self.step = 0, 0, 0
        self.sums = [0.0, 0.0, 0.0]  # loss*n, n, seconds in the current epoch
        self.best_val = None
        self.loss_weights = None
        if o.resume:
            self._resume()
        if (o.loss == "rebalanced" or (self.classify and o.rebalance)) and self.loss_weights is None:
            self.loss_weights = self._loss_weights()
        self.loss_fn = make_loss(o.loss, self.loss_weights)
        if isinstance(self.loss_fn, torch.nn.Module):
            self.loss_fn.to(self.device)
        self.ctx.log(
            f"train: {len(self.train_sources)} images{self.val_note}, {o.model} "
            f"({'frozen' if o.freeze_encoder else 'trainable'} encoder, weights {o.encoder_weights}), "
            f"{o.loss} loss, {self.steps_per_epoch} steps/epoch x {o.epochs} epochs on {self.device}"
            + (f" x {self.world} ranks" if self.distributed else "")
        )
        self.t_start = time.perf_counter()
        self._install_signals()
        try:
            self._epochs()
        finally:
            self._restore_signals()
        return self._finish()

    def _simulated_hints(self, target):
        """Hints simulated from the truth for this step (a pure function of seed and step)."""
        from colorbatch.models.hints import simulate

        g = torch.Generator().manual_seed(int(self.o.seed) * 1_000_003 + self.step * 7919 + self.rank)
        return simulate(target, g, p_none=self.o.hint_p_none, p_global=self.o.hint_p_global)

    def _epochs(self) -> None:
        o = self.o
        ds = ColorDataset(self.train_sources, o.size, train=True, gray_threshold=o.gray_threshold,
                          scale=(o.crop_scale_min, 1.0))
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else nullcontext()
        self.net.train()
        while self.epoch < o.epochs and not self._should_stop():
            sampler = EpochSampler(len(ds), seed=o.seed, epoch=self.epoch, rank=self.rank, world_size=self.world,
                                   repeat=o.repeat, start=self.batch_in_epoch * o.batch_size)
            task = self.ctx.task(f"train epoch {self.epoch + 1}/{o.epochs}", total=self.steps_per_epoch,
                                 unit="batches")
            task.advance(self.batch_in_epoch)
            t0 = time.perf_counter()
            for batch in self._loader(ds, sampler):
                self._note_skips(batch, self.train_sources, "train")
                rgb = batch["rgb"]
                if rgb is None and not self.distributed:
                    self.batch_in_epoch += 1
                    continue
                dummy = rgb is None
                if dummy:  # every DDP rank must take part in each step
                    rgb = torch.zeros(1, 3, o.size, o.size)
                L01, target = self._lab(rgb)
                kw = {"hints": self._simulated_hints(target)} if o.hints else {}
                with amp:
                    pred = (self.net(L01, logits=True, sample=o.sample_pixels, **kw) if self.classify
                            else self.net(L01, **kw))
                pred = tuple(pred) if isinstance(pred, (tuple, list)) else pred.float()
                loss = self.loss_fn(pred, target) * (0.0 if dummy else 1.0)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                if o.grad_clip:
                    torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad],
                                                   o.grad_clip)
                self.opt.step()
                if o.time_budget:
                    self.schedule.time_progress = min(1.0, (time.perf_counter() - self.t_start) / o.time_budget)
                self.sched.step()
                self.step += 1
                self.batch_in_epoch += 1
                n = 0 if dummy else rgb.shape[0]
                value = float(loss.detach())
                self.sums[0] += value * n
                self.sums[1] += n
                task.advance()
                if o.log_every and self.step % o.log_every == 0:
                    self._log({"kind": "step", "epoch": self.epoch + 1, "step": self.step, "loss": value,
                               "lr": self.opt.param_groups[0]["lr"]})
                if self._should_stop():
                    break
            self.sums[2] += time.perf_counter() - t0
            task.close()
            partial = self.batch_in_epoch < self.steps_per_epoch
            if partial and self.stop_reason == "signal":
                self._checkpoint(None)
                return
            self._end_epoch(partial)

    def _end_epoch(self, partial: bool) -> None:
        o = self.o
        s = D.all_reduce_sum([self.sums[0], self.sums[1]], self.device)
        from colorbatch.training.guards import require_training_data  # all skipped: nothing to save

        require_training_data(images=s[1], whole_epoch=not partial, first_epoch=self.epoch == 0, skipped=self.skipped,
                              sources=len(self.train_sources), gray_threshold=o.gray_threshold)
        train_loss = s[0] / s[1] if s[1] else None
        seconds = self.sums[2]
        val_loss, val_mse = self.validate()
        record = {
            "kind": "epoch", "epoch": self.epoch + 1, "step": self.step,
            "train_loss": train_loss, "val_loss": val_loss, "val_mse": val_mse,
            "lr": self.opt.param_groups[0]["lr"], "seconds": round(seconds, 3),
            "images_per_s": round(s[1] / seconds, 3) if seconds > 0 else None, "partial": partial,
        }
        if not partial:
            self.epoch += 1
            self.batch_in_epoch = 0
            self.sums = [0.0, 0.0, 0.0]
        improved = val_loss is not None and (self.best_val is None or val_loss < self.best_val)
        if improved:
            self.best_val = val_loss
        path = self._checkpoint(record)
        if improved and self.is_main:
            self._save("best", {"epoch": record["epoch"], "step": self.step, "val_loss": val_loss,
                                "val_mse": val_mse, "partial": partial})
        elif val_loss is None and self.is_main:
            self._save("best", {"epoch": record["epoch"], "step": self.step, "note": "no validation set"})
        self._log(record)
        self.ctx.event("epoch", {k: record[k] for k in ("epoch", "train_loss", "val_loss", "lr", "seconds",
                                                        "images_per_s")} | {"val_mse": val_mse, "partial": partial})
        fmt = lambda v: "-" if v is None else f"{v:.5f}"  # noqa: E731
        self.ctx.log(
            f"epoch {record['epoch']}/{o.epochs}{' (partial)' if partial else ''}: train {fmt(train_loss)}  "
            f"val {fmt(val_loss)}{'' if o.loss == 'mse' else f' (ab mse {fmt(val_mse)})'}  "
            f"{record['images_per_s'] or 0:.1f} img/s  {seconds:.0f} s" + ("  *best" if improved else "")
        )
        del path

    def _beats_current(self, path: Path) -> bool:
        from colorbatch.training.finish import beats_current

        return beats_current(self, path)

    def _finish(self) -> Path:
        D.barrier()
        best = self.ckpt_dir / "best.safetensors"
        last = self.ckpt_dir / "last.safetensors"
        chosen = best if best.is_file() else last
        self.ctx.state.checkpoint = chosen
        gray = sum(1 for v in self.skipped.values() if v == "gray")
        bad = sum(1 for v in self.skipped.values() if v == "error")
        self.ctx.state.train_skipped_gray = gray
        self.ctx.state.train_skipped_unreadable = bad
        if gray or bad:
            self.ctx.log(f"train: skipped {gray} gray source(s) and {bad} unreadable one(s)")
        if self.stop_reason == "signal":
            self.ctx.log(f"train: checkpoint saved in {self.ckpt_dir}; continue with --resume")
            raise KeyboardInterrupt
        if self.stop_reason in ("max_steps", "time_budget"):
            self.ctx.log(f"train: stopped by {self.stop_reason} at step {self.step}")
        if self.is_main and self.o.calibrate and chosen.is_file():
            from colorbatch.training.finish import calibrate_checkpoint

            calibrate_checkpoint(self, chosen)
        if self.is_main and self.o.publish == "if-better" and chosen.is_file() and not self._beats_current(chosen):
            self.ctx.state.published = None
        elif self.is_main and self.o.publish and chosen.is_file():
            from colorbatch.models.checkpoint import publish

            published = publish(chosen)
            self.ctx.state.published = published
            self.ctx.log(f"model published to {published} (colorbatch colorize finds it)")
        return chosen
