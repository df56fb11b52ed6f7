"""How far the colorize step's decoding workers run ahead of the network (docs/speed.md)."""
from __future__ import annotations

from types import SimpleNamespace

from colorbatch.steps.colorize import ColorizeStep


def _step(batch_size=8, max_batch_pixels=16_000_000):
    return SimpleNamespace(colorizer=SimpleNamespace(batch_size=batch_size),
                           options=SimpleNamespace(max_batch_pixels=max_batch_pixels))


def test_workers_prepare_a_batch_ahead_of_the_network():
    # two per worker left the network waiting for six files of every batch of eight
    ahead = ColorizeStep._ahead
    assert ahead(_step(), 1, 0) == 2  # before the first file's size is known: two per worker
    assert ahead(_step(), 1, 1_000_000) == 9  # a batch and one per worker
    assert ahead(_step(), 1, 2_000_000) == 8  # 2 MP files: what fits in max_batch_pixels
    assert ahead(_step(), 2, 1_000_000) == 10
    assert ahead(_step(batch_size=1), 3, 1_000_000) == 6  # never fewer than two per worker


def test_huge_files_keep_two_per_worker():
    assert ColorizeStep._ahead(_step(), 1, 50_000_000) == 2  # 50 MP: memory first
    assert ColorizeStep._ahead(_step(), 2, 50_000_000) == 4
