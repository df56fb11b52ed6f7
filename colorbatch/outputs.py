"""Outputs: how the ``save`` step writes an item, chosen by ``item.kind``.

The core plugin registers :data:`IMAGE` (kind ``image``): one image file per
item under the output folder, mirroring the input tree, written atomically,
recorded in the folder's manifest (:mod:`colorbatch.manifest`) for resuming.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from colorbatch.errors import ColorbatchError, ItemError


@dataclass
class OutputDef:
    """A writer for items of one kind.

    kind:     matches ``Item.kind`` (``image``; the video plugin adds ``video-frame``).
    factory:  ``factory(save_options, ctx) -> Output``; an ``Output`` has
              ``write(item) -> Path``, ``is_done(item) -> bool`` and ``close()``.
              ``write`` may return None when it buffers (a video writer).
    """

    kind: str
    factory: Callable[..., Any]
    help: str = ""
    plugin: str = field(default="", compare=False)


#: suffixes written as they are when ``format`` is unset; other inputs become PNG
KEEP_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"}


def output_suffix(item_id: str, fmt: str | None) -> str:
    from colorbatch.images import WRITE_FORMATS

    if fmt:
        return WRITE_FORMATS[fmt.lower()][1]
    suffix = Path(item_id).suffix
    return suffix if suffix.lower() in KEEP_SUFFIXES else ".png"


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def same_file(a: Path, b: Path | None) -> bool:
    """True when ``a`` and ``b`` name the same file (or would, once created)."""
    if b is None:
        return False
    try:
        if a.exists() and Path(b).exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


_same_file = same_file  # the old private name


def pipeline_signature(ctx) -> list[str]:
    """The steps between the loads and the current (save) step: part of the resume key."""
    plan = getattr(ctx, "plan", None)
    current = getattr(ctx, "current", None)
    if plan is None:
        return []
    out = []
    for cfg in plan.steps:
        if current is not None and cfg.index >= current.index:
            break
        if getattr(cfg.options, "source", None) is not None:
            continue  # a source step: where items come from, not what is done to them
        out.append(cfg.uses)
    return out


class ImageOutput:
    """Writes ``item.output`` (or the gray rendering of ``item.L``) as an image file."""

    def __init__(self, options, ctx):
        from colorbatch import __version__
        from colorbatch.manifest import Manifest

        self.options = options
        self.ctx = ctx
        self.out = Path(options.out).expanduser()
        self.out_real = Path(os.path.realpath(self.out))
        self.fmt = options.format
        self.manifest = Manifest(self.out, rank=getattr(ctx, "rank", 0))
        self.steps = pipeline_signature(ctx)
        self.signature = {"format": self.fmt, "quality": options.quality, "steps": self.steps}
        self.version = __version__
        # set by the save step when the output folder is, or contains, an input folder
        self.overlaps_inputs = bool(ctx.state.output_overlaps_inputs.get(str(self.out)))
        self.written: dict[str, str] = {}
        self.cleaned: set[str] = set()  # folders whose stale temporary files were removed

    # ---- naming -------------------------------------------------------------
    def relative_output(self, item) -> str:
        rel = Path(item.id).with_suffix(output_suffix(item.id, self.fmt)) if Path(item.id).suffix else Path(
            item.id + output_suffix(item.id, self.fmt)
        )
        return rel.as_posix()

    def target(self, item) -> Path:
        return self.out / self.relative_output(item)

    # ---- resume -------------------------------------------------------------
    def model_id(self):
        return self.ctx.state.model_id

    def item_signature(self, item) -> dict:
        """The resume key's options for ``item``: the run's, plus the digest of its colour hints
        (so a resumed run redoes an image whose hints changed, and only that one)."""
        plan = self.ctx.state.hints
        if plan is None:
            return self.signature
        digest = plan.lookup(item).digest
        return dict(self.signature, hints=digest) if digest else self.signature

    def is_done(self, item) -> bool:
        if self.options.overwrite:
            return False
        try:
            signature = self.item_signature(item)
        except ColorbatchError:
            return False  # a bad hint file: colorize reports it
        return self.manifest.is_done(item.id, item.path, self.model_id(), signature)

    # ---- writing ------------------------------------------------------------
    def _pixels(self, item):
        if item.output is not None:
            return item.output
        from colorbatch.images import L_to_gray, decode_item

        decode_item(item)
        return L_to_gray(item.L)

    def check_target(self, item, target: Path, rel: str) -> None:
        real = Path(os.path.realpath(target))
        if not _inside(real, self.out_real):
            raise ItemError(f"{item.label}: output {target} would fall outside the output folder {self.out}")
        if same_file(target, item.path):
            raise ItemError(
                f"{item.label}: the output path is the input itself; an input is never replaced, "
                "whatever the flags (--overwrite included): choose another out folder or format"
            )
        other = self.written.get(rel)
        if other is not None and other != item.id:
            raise ItemError(
                f"{item.label}: output {rel} was already written for {other} in this run "
                "(two inputs differ only by extension); set a format or rename one"
            )
        if os.path.lexists(target) and not self.manifest.owns(rel):
            if self.overlaps_inputs:
                raise ItemError(
                    f"{item.label}: {target} exists and was not written by colorbatch (it may be an "
                    "input); refusing to overwrite it; choose an output folder outside the inputs"
                )
            if not self.options.overwrite:
                raise ItemError(
                    f"{item.label}: conflict: {target} exists and was not written by colorbatch; it was "
                    "kept: move it away, choose another out folder, or pass --overwrite "
                    "(recipe: overwrite = true) to replace it"
                )

    #: the save step may run :meth:`PendingWrite.run` in a background thread (see
    #: :meth:`colorbatch.steps.save.SaveStep.run`); an output without it is written in order
    #: in the main thread
    background = True

    def begin(self, item) -> "PendingWrite":
        """The main thread's part of writing ``item``: the checks (an input is never an
        output, conflicts, two inputs for one output), stale temporary files, the
        provenance. The file itself is written by :meth:`PendingWrite.run` (any thread),
        and recorded by :meth:`finish` (the main thread, in order)."""
        rel = self.relative_output(item)
        target = self.out / rel
        self.check_target(item, target, rel)
        folder = str(target.parent)
        if folder not in self.cleaned:  # what a run killed with kill -9 left behind
            from colorbatch.atomic import clean_stale_temps

            clean_stale_temps(folder)
            self.cleaned.add(folder)
        signature = self.item_signature(item)
        metadata = {
            "colorbatch": self.version,
            "model": self.model_id(),
            "source": item.id,
            "steps": self.steps,
        }
        if "hints" in signature:
            metadata["hints"] = signature["hints"]
        if item.meta.get("runtime"):
            metadata["runtime"] = item.meta["runtime"]  # what ran the network (torch, onnxruntime)
        self.written[rel] = item.id  # claimed now: a later item of this run may not take it
        return PendingWrite(self, item, rel, target, signature, metadata)

    def finish(self, job: "PendingWrite", error: BaseException | None = None) -> None:
        """Record a written file in the manifest; after a failed write, release its name."""
        if error is not None:
            if self.written.get(job.rel) == job.item.id:
                del self.written[job.rel]
            return
        self.manifest.add(job.item.id, job.item.path, job.rel, self.model_id(), job.signature)

    def write(self, item) -> Path:
        job = self.begin(item)
        try:
            job.run()
        except BaseException as exc:
            self.finish(job, exc)
            raise
        self.finish(job)
        return job.target

    def close(self) -> None:
        self.manifest.close()


@dataclass
class PendingWrite:
    """One output being written: :meth:`run` encodes and writes the file atomically; it
    touches nothing shared, so it may run in a background thread."""

    output: ImageOutput
    item: Any
    rel: str
    target: Path
    signature: dict
    metadata: dict
    from_encoded: bool = False  # written from the item's Encoded bytes (encoded on the GPU)

    def pixels(self) -> int:
        out = self.item.output
        return int(out.shape[0]) * int(out.shape[1]) if out is not None else 0

    def run(self) -> Path:
        from colorbatch.images import write_image

        o = self.output
        if self.encoded() is not None:
            from colorbatch.image_write import write_encoded_jpeg

            try:
                write_encoded_jpeg(self.target, self.item.encoded.data, metadata=self.metadata)
                self.from_encoded = True
                return self.target
            except ValueError:  # not a JPEG we can add the EXIF to: encode here
                pass
        write_image(self.target, o._pixels(self.item), fmt=o.fmt, metadata=self.metadata, quality=o.options.quality)
        return self.target

    def encoded(self):
        """The item's :class:`colorbatch.item.Encoded` where it is exactly what this write
        would encode (a JPEG of the current output at this quality), else None."""
        from colorbatch.image_write import jpeg_written_as

        enc, out = getattr(self.item, "encoded", None), self.item.output
        if enc is None or enc.format != "JPEG" or enc.pixels is not out or out is None:
            return None
        if int(enc.quality) != int(self.output.options.quality):
            return None
        return enc if jpeg_written_as(self.target, out, self.output.fmt) else None


IMAGE = OutputDef(
    kind="image",
    factory=ImageOutput,
    help="one image file per item, mirroring the input tree (png, jpg, webp, tiff)",
)

CORE_OUTPUTS = [IMAGE]
