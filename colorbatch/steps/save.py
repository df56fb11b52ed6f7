"""The ``save`` step: write each item with the output registered for its kind.

Outputs mirror the input tree under ``out`` (``out / item.id`` with the new
suffix), are written atomically and recorded in the folder's manifest, so a
rerun skips finished items (``overwrite = true`` redoes them). An input is
never overwritten: an output folder equal to an input folder is refused unless
a ``format`` changes the names, and each write that would land on its input,
or on a file colorbatch did not write inside an input folder, fails that item.

Images are encoded and written in a background thread while the stream produces the
next items (the network of the next batch runs meanwhile): the checks run in the main
thread before, the manifest record and the ``saved`` event after, item by item in
order, so a bad item still fails alone and a stopped run records every file it wrote.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from colorbatch.errors import ColorbatchError, ItemError, StepError
from colorbatch.steps import ItemStep, StepDef

#: writes in flight at most (items, and their pixels), beyond which the stream waits
WRITE_AHEAD = 8
WRITE_AHEAD_PIXELS = 16_000_000


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    out: str = Field(..., description="Output folder; the input tree is mirrored under it.")
    format: Optional[Literal["png", "jpg", "jpeg", "webp", "tif", "tiff"]] = Field(
        None, description="png | jpg | webp | tiff (default: the input's format; others become png)."
    )
    overwrite: bool = Field(False, description="Redo outputs the manifest says are finished.")
    quality: int = Field(95, ge=1, le=100, description="JPEG / WebP quality (1-100).")


def _excess(pixels: list) -> int:
    """How many of the oldest writes in flight (``pixels`` each) must finish before the
    stream goes on: at most :data:`WRITE_AHEAD` stay, and :data:`WRITE_AHEAD_PIXELS`
    unless a single write is bigger."""
    n = 0
    while len(pixels) - n > 1 and (len(pixels) - n > WRITE_AHEAD or sum(pixels[n:]) > WRITE_AHEAD_PIXELS):
        n += 1
    return n


def _source_roots(ctx) -> list[Path]:
    """Folders the earlier steps read from (any step option named ``source``)."""
    from colorbatch.sources import glob_root, ilsvrc_root, is_glob

    roots = []
    current = ctx.current.index if ctx.current is not None else 10**9
    for cfg in ctx.plan.steps:
        if cfg.index >= current:
            break
        src = getattr(cfg.options, "source", None)
        if not isinstance(src, str):
            continue
        p = Path(src).expanduser()
        if is_glob(src) and not p.exists():
            roots.append(glob_root(src))
        elif p.is_dir():
            roots.append(p)
            found = ilsvrc_root(p)
            if found is not None:
                roots.append(found[0])
        elif p.is_file():
            roots.append(p.parent)
    return [Path(os.path.realpath(r)) for r in roots]


def _source_files(ctx) -> list[Path]:
    """Single files the earlier steps read (a ``source`` option naming one file)."""
    current = ctx.current.index if ctx.current is not None else 10**9
    out = []
    for cfg in ctx.plan.steps:
        if cfg.index >= current:
            break
        src = getattr(cfg.options, "source", None)
        if isinstance(src, str) and Path(src).expanduser().is_file():
            out.append(Path(src).expanduser())
    return out


def _same_file(a: Path, b: Path) -> bool:
    from colorbatch.outputs import same_file

    return same_file(a, b)


def _image_name(path: Path) -> bool:
    from colorbatch.images import IMAGE_EXTENSIONS, WRITE_FORMATS

    suffixes = {e.lower() for e in IMAGE_EXTENSIONS} | {f".{k}" for k in WRITE_FORMATS}
    return path.suffix.lower() in suffixes


def _claimed_file(path: Path, ctx) -> bool:
    """True when a source plugin claims ``path``'s extension (e.g. ``--out film.mp4``
    for one video): its output may then be that file rather than a folder."""
    from colorbatch import registry

    ext = path.suffix.lower()
    return bool(ext) and any(ext in (d.extensions or ()) for d in registry.sources(ctx.pm).values())


class SaveStep(ItemStep):
    def __init__(self, options: Options, ctx):
        super().__init__(options, ctx)
        from colorbatch import registry

        self.out = Path(options.out).expanduser()
        for src in _source_files(ctx):
            if _same_file(self.out, src):
                raise ColorbatchError(
                    f"out = {self.out}: is the input {src} itself; an input is never an output, whatever "
                    "the flags (--overwrite included); choose another output name or folder"
                )
        if self.out.exists() and not self.out.is_dir() and not _claimed_file(self.out, ctx):
            raise ColorbatchError(f"out = {self.out}: is a file; give a folder")
        if not self.out.exists() and _image_name(self.out) and not _claimed_file(self.out, ctx):
            raise ColorbatchError(
                f"out = {self.out}: looks like an image file name, but out is a folder (outputs keep their "
                f"input names under it); give a folder, e.g. {self.out.with_suffix('')}, "
                "or create the folder first if that is really its name"
            )
        real = Path(os.path.realpath(self.out))
        overlap = False
        for root in _source_roots(ctx):
            if real == root:
                if options.format is None:
                    raise ColorbatchError(
                        f"out = {self.out}: is the input folder, and without a format the outputs "
                        "would replace the inputs; choose another output folder"
                    )
                overlap = True
            elif root.is_relative_to(real):
                overlap = True  # the inputs live inside the output folder
        ctx.state.output_overlaps_inputs[str(self.out)] = overlap
        # outputs are built lazily and read the plan position from ctx.current
        self.cfg = ctx.current
        if self.cfg is None or self.cfg.options is not options:
            self.cfg = next((c for c in ctx.plan.steps if c.options is options), ctx.current)
        self.defs = registry.outputs(ctx.pm)
        self.outputs: dict[str, object] = {}

    def output_folders(self) -> list:
        return [self.out]  # a load step must not read this run's outputs back as inputs

    def output_for(self, kind: str):
        out = self.outputs.get(kind)
        if out is None:
            d = self.defs.get(kind)
            if d is None:
                raise ItemError(
                    f"no output is registered for items of kind {kind!r} "
                    f"(known: {', '.join(sorted(self.defs)) or 'none'}); install the plugin that adds it"
                )
            previous, self.ctx.current = self.ctx.current, self.cfg
            try:
                out = self.outputs[kind] = d.factory(self.options, self.ctx)
            finally:
                self.ctx.current = previous
        return out

    def is_done(self, item) -> bool:
        if item.kind not in self.defs:
            return False
        return bool(self.output_for(item.kind).is_done(item))

    def process(self, item):
        return self._saved(item, self.output_for(item.kind).write(item))

    def _saved(self, item, path, encoded: bool = False):
        if path is not None:
            data = {"item": item.id, "input": str(item.path) if item.path else None, "output": str(path), "kind": item.kind}
            if encoded:
                data["encoded"] = "device"  # the bytes came encoded (a GPU's JPEG encoder)
            self.ctx.event("saved", data)
        return item

    def run(self, items):
        """:meth:`ItemStep.run` with the writing of images overlapped (see the module's note)."""
        from collections import deque

        pending: deque = deque()  # (item, PendingWrite, future), oldest first
        try:
            for item in items:
                if item.is_marker:
                    yield from self._finished(pending, wait=len(pending))
                    yield item
                    continue
                try:
                    out = self.output_for(item.kind)
                    job = out.begin(item) if getattr(out, "background", False) else None
                except (KeyboardInterrupt, StepError):
                    raise
                except Exception as exc:  # noqa: BLE001 - this item only, reported in order
                    yield from self._finished(pending, wait=len(pending))
                    self.ctx.fail(item, exc, self.cfg)
                    continue
                if job is None:  # an output that writes in order (a plugin's)
                    yield from self._finished(pending, wait=len(pending))
                    yield from super().run([item])
                    continue
                pending.append((item, job, self._writer().submit(job.run)))
                yield from self._finished(pending, wait=_excess([j.pixels() for _, j, _ in pending]))
            yield from self._finished(pending, wait=len(pending))
        finally:  # stopped early (Ctrl-C, an error downstream): record what was written
            for _ in self._finished(pending, wait=len(pending)):
                pass

    def _finished(self, pending, wait: int):
        """Finish the oldest writes: the first ``wait`` of them, waiting for each, then any
        already done; record each (or report its failure) and yield its item."""
        while pending and (wait > 0 or pending[0][2].done()):
            item, job, fut = pending.popleft()
            wait -= 1
            error = fut.exception()
            job.output.finish(job, error)
            if error is None:
                yield self._saved(item, job.target, job.from_encoded)
            elif isinstance(error, (KeyboardInterrupt, StepError)):
                raise error
            else:
                self.ctx.fail(item, error, self.cfg)

    def _writer(self):
        if getattr(self, "_executor", None) is None:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="colorbatch-save")
        return self._executor

    def close(self) -> None:
        ex = getattr(self, "_executor", None)
        if ex is not None:
            ex.shutdown(wait=True)
            self._executor = None
        for out in self.outputs.values():
            out.close()


STEP = StepDef(
    name="save",
    options=lambda: Options,
    factory=SaveStep,
    help="Write outputs under a folder mirroring the inputs (atomic, resumable, never over an input).",
    path_options=("out",),
    writes_outputs=True,
)
