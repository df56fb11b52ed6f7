"""ItemList: a lazy, indexable list of items made from their ids on access (for very large sources)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Callable

from colorbatch.item import Item


class ItemList(Sequence):
    """A lazy, indexable list of items: ids are held, each Item is made on access.

    For very large sources (ILSVRC has 450,000 training images) this keeps the
    start fast and the memory small; ``len()`` and ``[i]`` work, so it can feed
    a ``torch.utils.data.DataLoader`` directly.
    """

    def __init__(self, ids: list[str], make: Callable[[str], Item]):
        self.ids = ids
        self.make = make

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return ItemList(self.ids[i], self.make)
        return self.make(self.ids[i])

    def __iter__(self):
        make = self.make
        for rel in self.ids:
            yield make(rel)
