"""Checks that stop a training run which cannot produce a useful model.

A source where every image is skipped (all already gray, or unreadable) gives a
network that never saw a single training crop. Such a model must not be saved
as ``last``/``best`` nor published to the model cache, where ``colorize`` would
pick it up: the run stops with one line and exit code 2 (a usage error: the
input is wrong, nothing useful was made).
"""
from __future__ import annotations

from colorbatch.errors import ColorbatchError


class NoTrainingData(ColorbatchError):
    """Every training image of a whole epoch was skipped."""


def require_training_data(*, images: float, whole_epoch: bool, first_epoch: bool, skipped: dict,
                          sources: int, gray_threshold: float) -> None:
    """Raise :class:`NoTrainingData` when the first whole epoch trained on no image.

    ``images``: images trained on in the epoch (summed over ranks); ``skipped``: the
    trainer's ``{(split, index): "gray" | "error"}``.
    """
    if images > 0 or not whole_epoch or not first_epoch:
        return
    train = [why for (split, _), why in skipped.items() if split == "train"]
    gray = sum(1 for why in train if why == "gray")
    bad = sum(1 for why in train if why == "error")
    raise NoTrainingData(
        f"train: no training data: all {sources} training images were skipped ({gray} gray, {bad} "
        f"unreadable); nothing was saved or published; train on colour photos (a source whose mean "
        f"chroma is below gray_threshold = {gray_threshold:g} counts as gray)"
    )
