"""The ``load`` step: list the input items (paths only; pixels are decoded later).

Items from upstream steps pass first, then this step's own, so two loads in a
row combine their sources. Order is deterministic (sorted by relative path) and
each item gets ``meta["index"]``, its position in this step's list.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Optional

from pydantic import BaseModel, ConfigDict, Field

from colorbatch.errors import ColorbatchError
from colorbatch.images import IMAGE_EXTENSIONS
from colorbatch.steps import Step, StepDef


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        ...,
        description="A file, a folder (recursive), a glob (scans/**/*.tif) or a .txt list of paths "
        "(one per line, relative to the list file).",
    )
    layout: str = Field(
        "auto",
        description="auto | files | ilsvrc | a source added by a plugin. auto picks ilsvrc for an "
        "ILSVRC2017_DET folder, else files.",
    )
    split: Optional[str] = Field(
        None, description="ilsvrc only: train or val (default: from the path, else train)."
    )
    extensions: list[str] = Field(
        default_factory=lambda: list(IMAGE_EXTENSIONS),
        description="File types taken from folders and globs (case-insensitive).",
    )
    recursive: bool = Field(True, description="Descend into sub-folders.")
    limit: Optional[int] = Field(None, ge=0, description="Keep only the first N items (after sorting).")
    size: Optional[int] = Field(
        None, ge=1, description="A size hint for later steps (network resolution), in pixels."
    )
    source_options: dict = Field(
        default_factory=dict,
        description="Settings of the chosen source (layout), e.g. { settle = 2 } for watch; "
        "validated against that source's own options.",
    )
    max_pixels: Optional[int] = Field(
        None,
        ge=0,
        description="Refuse images with more pixels (decompression-bomb guard; default "
        "$COLORBATCH_MAX_PIXELS or 250 million; 0 = no limit).",
    )


def resolve_layout(options: Options, ctx) -> str:
    from colorbatch import registry
    from colorbatch.sources import ilsvrc_root

    available = registry.sources(ctx.pm)
    layout = options.layout
    if layout == "auto":
        return "ilsvrc" if "ilsvrc" in available and ilsvrc_root(options.source) else "files"
    if layout not in available:
        from colorbatch.messages import did_you_mean

        raise ColorbatchError(
            f"layout {layout!r} is not a known source{did_you_mean(layout, available)} "
            f"(available: auto, {', '.join(sorted(available))})"
        )
    return layout


class LoadStep(Step):
    def __init__(self, options: Options, ctx):
        super().__init__(options, ctx)
        if options.split is not None and options.split not in ("train", "val"):
            raise ColorbatchError(f"split {options.split!r}: use train or val")
        self.layout = resolve_layout(options, ctx)
        self._validate_source_options()
        from colorbatch.images import max_pixels_limit

        max_pixels_limit(options.max_pixels)  # a bad COLORBATCH_MAX_PIXELS stops the run before any work
        from pathlib import Path

        from colorbatch.sources import is_glob

        src = options.source
        if self.layout in ("files", "ilsvrc") and not is_glob(src):
            p = Path(src).expanduser()
            if not p.exists():
                raise ColorbatchError(f"{src}: source not found; check the load step's source path")

    def _validate_source_options(self) -> None:
        """Check ``source_options`` against the chosen source's schema, naming each field."""
        from colorbatch import registry
        from colorbatch.errors import RecipeError

        sdef = registry.sources(self.ctx.pm)[self.layout]
        given = self.options.source_options
        where = "source_options"  # the runner prefixes the step's name
        if sdef.options is None:
            if given:
                raise RecipeError(f"{where}: the {self.layout!r} source takes no options")
            return
        from pydantic import ValidationError

        from colorbatch.messages import format_pydantic as _format_pydantic

        model = sdef.options()
        try:
            self.options.source_options = model.model_validate(given)
        except ValidationError as exc:
            raise RecipeError(_format_pydantic(exc, where, model)) from None

    def _tag(self, item, index: int):
        item.meta["index"] = index
        if self.options.size is not None:
            item.meta.setdefault("size", self.options.size)
        if self.options.max_pixels is not None:
            item.meta["max_pixels"] = self.options.max_pixels
        return item

    def items(self, *, report_count: bool = False) -> Iterator:
        """This step's own items: sorted, limited and indexed.

        A source may return a list (or any sized sequence), or an unbounded
        iterator (a watched folder) whose items and flush markers are streamed
        as they come. ``report_count``: tell the run how many items will come
        (``ctx.listed``: progress totals and ETA), or that it cannot know.
        """
        from collections.abc import Iterator as _Iter
        from collections.abc import Sized

        from colorbatch import registry

        sdef = registry.sources(self.ctx.pm)[self.layout]
        result = sdef.enumerate(self.options.source, self.options, self.ctx)
        limit = self.options.limit
        if report_count:
            known = result is None or (isinstance(result, Sized) and not isinstance(result, _Iter))
            count = 0 if result is None else len(result) if known else None
            self.ctx.listed(count if count is None or limit is None else min(count, limit))
        if result is None:
            return
        index = 0
        if limit == 0:
            return
        for item in result:
            if item.is_marker:
                yield item
                continue
            self.count = index + 1
            yield self._tag(item, index)
            index += 1
            if limit is not None and index >= limit:
                break

    def run(self, items: Iterable) -> Iterator:
        yield from items
        self.count = 0
        yield from self.items(report_count=True)
        if not self.count:
            self.ctx.warn(f"{self.options.source}: no input files found")
        self.ctx.state.load_count = (self.ctx.state.load_count or 0) + self.count


STEP = StepDef(
    name="load",
    options=lambda: Options,
    factory=LoadStep,
    help="List input images: a file, folder, glob, list file or ILSVRC layout (sorted, lazy).",
    path_options=("source",),
)
