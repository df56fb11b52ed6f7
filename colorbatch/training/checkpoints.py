"""The training loop's checkpoints: ``last`` and ``best`` weights, the resume state beside
``last``, and resuming from them (a mixin of :class:`colorbatch.training.loop.Trainer`)."""
from __future__ import annotations

from pathlib import Path

import torch

from colorbatch.errors import ColorbatchError
from colorbatch.training.state import load_state, rng_state, save_state, set_rng_state, state_path, to_cpu


class CheckpointsMixin:
    """Checkpoint writing and resuming; uses the Trainer's model, optimizer, scheduler and counters."""

    def _config(self) -> dict:
        o = self.o
        return {
            "trained_with": {k: v for k, v in o.model_dump(mode="json").items()
                             if k not in ("checkpoint_dir", "log", "val_source", "resume")},
        }

    def _save(self, name: str, training: dict) -> Path:
        from colorbatch.models.checkpoint import save_checkpoint

        path = self.ckpt_dir / f"{name}.safetensors"
        if self.is_main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            save_checkpoint(path, self.model, self._config(), training)
        return path

    def _state(self) -> dict:
        return {
            "version": 1,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "step": self.step,
            "sums": list(self.sums),
            "best_val": self.best_val,
            "optimizer": to_cpu(self.opt.state_dict()),
            "scheduler": self.sched.state_dict(),
            "rng": rng_state(),
            "loss_weights": self.loss_weights if self.loss_weights is not None else torch.zeros(0),
            "world_size": self.world,
            "batch_size": self.o.batch_size,
            "seed": self.o.seed,
        }

    def _checkpoint(self, record: dict | None) -> Path:
        training = {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.step,
                    "best_val_loss": self.best_val, "last": record}
        path = self._save("last", training)
        if self.is_main:
            save_state(state_path(path), self._state())
        return path

    def _resume(self) -> None:
        from colorbatch.models.checkpoint import load_checkpoint

        path = self.ckpt_dir / "last.safetensors"
        spath = state_path(path)
        if not path.is_file() or not spath.is_file():
            raise ColorbatchError(f"train: nothing to resume in {self.ckpt_dir} (no last.safetensors and "
                                  "last.state.pt); run without resume, or point checkpoint_dir at the old run")
        saved, _ = load_checkpoint(path, device="cpu")
        self.model.load_state_dict(saved.state_dict())
        st = load_state(spath)
        if st.get("batch_size") != self.o.batch_size or st.get("world_size") != self.world:
            self.ctx.warn(f"resuming with batch_size {self.o.batch_size} x {self.world} ranks; the checkpoint "
                          f"used {st.get('batch_size')} x {st.get('world_size')}: the data order will differ")
        self.opt.load_state_dict(st["optimizer"])
        self.sched.load_state_dict(st["scheduler"])
        self.epoch, self.batch_in_epoch, self.step = st["epoch"], st["batch_in_epoch"], st["step"]
        self.sums, self.best_val = list(st["sums"]), st["best_val"]
        if st["loss_weights"].numel():
            self.loss_weights = st["loss_weights"]
        set_rng_state(st["rng"])
        self.ctx.log(f"resumed from {path}: epoch {self.epoch + 1}, batch {self.batch_in_epoch}, step {self.step}")
