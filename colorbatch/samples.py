"""Colour sample photos shipped inside installed packages, for the offline quickstart.

scikit-image bundles a few colour photographs in its wheel (no download), and
scikit-learn and matplotlib add one or two each. :func:`gather` copies them into
a folder split deterministically into ``train/`` and ``heldout/``; the
``samples`` source (``load`` with ``layout = "samples"``) does it on demand::

    [[steps]]
    uses = "load"
    with = { source = "{run_dir}/samples/train", layout = "samples" }

The last part of ``source`` names the split (``train``, ``heldout`` or
``all``); its parent is where the photos are copied (once; existing copies are
kept). The split is fixed by name, so it is the same on every machine;
photos of a package that is not installed are left out.
"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from colorbatch.atomic import atomic_write

# (package, path inside the package, split). Only colour photographs of the world:
# gray, synthetic and logo images are left out, and so are scikit-image's
# microscopy slide (ihc), retina scan and Hubble deep field, which taught the
# 0.1.0 quickstart model a pink-orange cast. The held-out photos are chosen to
# cover different subjects (animal, flower, portrait) from those trained on.
SAMPLES: tuple[tuple[str, str, str], ...] = (
    ("skimage", "data/astronaut.png", "train"),
    ("skimage", "data/coffee.png", "train"),
    ("skimage", "data/rocket.jpg", "train"),
    ("skimage", "data/motorcycle_left.png", "train"),
    ("skimage", "data/motorcycle_right.png", "train"),
    ("sklearn", "datasets/images/china.jpg", "train"),
    ("skimage", "data/chelsea.png", "heldout"),
    ("sklearn", "datasets/images/flower.jpg", "heldout"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "heldout"),
)
SPLITS = ("train", "heldout", "all")


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def available() -> list[tuple[Path, str]]:
    """(file, split) of every sample photo present in this installation."""
    out = []
    for package, rel, split in SAMPLES:
        base = _package_dir(package)
        if base is not None and (base / rel).is_file():
            out.append((base / rel, split))
    return out


def gather(folder: str | Path) -> dict[str, list[Path]]:
    """Copy the sample photos into ``folder/train`` and ``folder/heldout``.

    Files already there are kept (the copy is atomic). Returns split -> files.
    """
    folder = Path(folder)
    found: dict[str, list[Path]] = {"train": [], "heldout": []}
    for src, split in available():
        dest_dir = folder / split
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / src.name
        if not dest.exists() or dest.stat().st_size != src.stat().st_size:
            atomic_write(dest, lambda tmp, src=src: shutil.copyfile(src, tmp))
        found[split].append(dest)
    return {k: sorted(v) for k, v in found.items()}


def enumerate_samples(source, options, ctx) -> list:
    """The ``samples`` source: ``source`` is ``<folder>/<split>``."""
    from colorbatch.errors import ColorbatchError
    from colorbatch.item import Item

    path = Path(str(source))
    split = path.name
    if split not in SPLITS:
        raise ColorbatchError(
            f"load: source {str(source)!r} with layout 'samples' must end in one of "
            f"{', '.join(SPLITS)} (e.g. \"{{run_dir}}/samples/train\")"
        )
    files = gather(path.parent)
    chosen = files["train"] + files["heldout"] if split == "all" else files[split]
    if not chosen:
        raise ColorbatchError(
            "load: no sample photos found; install scikit-image (and for more photos "
            "scikit-learn and matplotlib: pip install 'colorbatch[samples]')"
        )
    items = []
    for i, f in enumerate(sorted(chosen)):
        root = f.parent if split != "all" else path.parent
        items.append(
            Item(id=f.relative_to(root).as_posix(), path=f, root=root, kind="image", meta={"index": i})
        )
    return items


def source_def():
    from colorbatch.sources import SourceDef

    return SourceDef(
        name="samples",
        enumerate=enumerate_samples,
        help="the colour sample photos that scikit-image, scikit-learn and matplotlib ship "
        "(source = <folder>/train | heldout | all; copied there on first use)",
    )
