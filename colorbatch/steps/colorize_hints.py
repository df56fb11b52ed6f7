"""The colorize step's colour hints: per item, the network hints from its hint file, the
run's reference photo, or (evaluation) hints simulated from the colour truth.

See :mod:`colorbatch.hints` (hint files, :class:`~colorbatch.hints.HintPlan`) and
:mod:`colorbatch.models.hints` (what the network takes, and the refinement after it).
"""
from __future__ import annotations


def hint_plan(options):
    """The run's :class:`~colorbatch.hints.HintPlan` from the step options (checked: one line per bad option)."""
    from pathlib import Path

    from colorbatch.errors import ColorbatchError
    from colorbatch.hints import SELF, HintPlan

    if options.hints is not None and not Path(options.hints).is_dir():
        raise ColorbatchError(f"hints = {options.hints}: no such folder (a folder of NAME.hints.json files "
                              "mirroring the input tree)")
    if options.reference is not None and options.reference_self:
        raise ColorbatchError("reference and reference_self: give one of them")
    if options.reference is not None and not Path(options.reference).is_file():
        raise ColorbatchError(f"reference = {options.reference}: no such file (a colour photo)")
    ref = SELF if options.reference_self else (Path(options.reference) if options.reference else None)
    return HintPlan(Path(options.hints) if options.hints else None, ref, options.simulate_hints, options.hint_seed)


class StepHints:
    """One colorize step's hints: the plan (kept in the run state) and the reference photos read."""

    def __init__(self, options):
        self.plan = hint_plan(options)
        self.needs_truth = bool(options.simulate_hints or options.reference_self)
        self._references: dict = {}

    def _reference(self, path):
        """The global hint of a reference photo (read once per run)."""
        hit = self._references.get(str(path))
        if hit is None:
            from colorbatch.errors import ColorbatchError
            from colorbatch.images import read_image
            from colorbatch.models.hints import reference_colourfulness, reference_hint

            try:
                img = read_image(path)
            except Exception as exc:  # noqa: BLE001 - one line naming the file
                from colorbatch.errors import one_line

                raise ColorbatchError(f"reference {path}: cannot read it ({one_line(exc)})") from None
            rgb = img.pixels if img.is_color and not img.meta.get("near_gray") else None
            if rgb is None:
                raise ColorbatchError(f"reference {path}: is a gray image; a reference must be a colour photo")
            hit = self._references[str(path)] = (reference_hint(rgb), reference_colourfulness(rgb))
        return hit

    def for_item(self, item, prep, colorizer):
        """The network hints for one prepared item (None without hints); raises ColorbatchError
        for a bad hint file, a model without hint inputs, or a simulation without a truth."""
        import zlib

        from colorbatch.errors import ColorbatchError
        from colorbatch.hints import SELF, points_in_pixels

        ih = self.plan.lookup(item)
        if ih.empty:
            return None
        if ih.simulate or ih.reference is not None or (ih.hints is not None and ih.hints.points):
            colorizer.check_hints()  # a chroma alone needs no hint inputs
        from colorbatch.colorizer import unpack_rgb
        from colorbatch.models.hints import for_image, reference_colourfulness, reference_hint, simulate_user_points

        H, W = prep["Lq"].shape
        truth = None
        if ih.simulate or ih.reference == SELF:
            truth = item.rgb if item.rgb is not None else unpack_rgb(prep.get("rgb"))
            if truth is None:
                raise ColorbatchError(f"{item.label}: simulated hints and reference self need a colour input "
                                      "(the truth to take them from); this one is gray")
        if ih.simulate:
            pts = simulate_user_points(truth, ih.simulate, ih.seed * 1_000_003 + zlib.crc32(item.id.encode()))
        else:
            pts = points_in_pixels(ih.hints, W, H) if ih.hints is not None else []
        if ih.reference == SELF:
            ref, vivid = reference_hint(truth), reference_colourfulness(truth)
        elif ih.reference is not None:
            ref, vivid = self._reference(ih.reference)
        else:
            ref, vivid = None, None
        item.meta["hints"] = ih.digest
        item.meta["hint_points"] = [[round(x, 1), round(y, 1), round(r, 1), "#%02x%02x%02x" % tuple(c)]
                                    for x, y, r, c in pts]
        chroma = ih.hints.chroma if ih.hints is not None else None
        return for_image(pts, (H, W), tuple(prep["small"].shape[-2:]), ref, vivid, chroma)
