"""Sources: what the ``load`` step reads items from.

A :class:`SourceDef` turns a ``source`` option (a path, folder, glob or list
file) into a lazy, indexable list of :class:`colorbatch.item.Item` (paths only;
pixels are decoded later, in DataLoader workers where it matters).

The core plugin registers two:

``files``   a single file, a folder (recursive), a glob (``scans/**/*.tif``) or a
            list file (``.txt``, one path per line, relative to the list file).
            Files whose extension another source claims (the video plugin's
            ``.mp4``) are handed to that source, so a folder mixing photos and
            videos works item by item.
``ilsvrc``  the ILSVRC2017_DET layout: ``<root>/ILSVRC/Data/DET/{train,val}/...``
            with its list files ``<root>/ILSVRC/ImageSets/DET/{train,val}.txt``.
"""
from __future__ import annotations

import glob as _glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from colorbatch.errors import ColorbatchError
from colorbatch.item import Item
from colorbatch.itemlist import ItemList


@dataclass
class SourceDef:
    """A named way to enumerate items.

    name:        the ``layout`` value of the load step (``files``, ``ilsvrc``, ``video``).
    enumerate:   ``enumerate(source, options, ctx) -> list[Item]``; raise
                 :class:`colorbatch.errors.ColorbatchError` for a bad source.
                 ``options`` is the load step's options object.
    extensions:  file extensions (lower case, with dot) this source claims when
                 the ``files`` layout meets a single file or a folder entry of
                 that type, e.g. the video plugin claims ``.mp4``. The claimed
                 file is passed to ``enumerate`` as the source; the ids of the
                 items it returns are taken relative to the file's folder and
                 prefixed with that folder's place in the tree, so outputs mirror
                 the input tree.
    options:     optional: a callable returning a pydantic model (``extra="forbid"``)
                 for the source's own settings, given in the load step's
                 ``source_options`` table. They are validated before any work
                 starts; ``enumerate`` finds the validated model in
                 ``options.source_options``.
    """

    name: str
    enumerate: Callable[..., Any]
    extensions: tuple[str, ...] = ()
    help: str = ""
    options: Callable[[], type] | None = None
    plugin: str = field(default="", compare=False)


GLOB_CHARS = set("*?[")


def normalise_extensions(exts: Iterable[str]) -> tuple[str, ...]:
    out = []
    for e in exts:
        e = str(e).strip().lower()
        if not e:
            continue
        out.append(e if e.startswith(".") else "." + e)
    return tuple(dict.fromkeys(out))


def is_glob(text: str) -> bool:
    return any(ch in GLOB_CHARS for ch in text)


def sort_key(item_id: str):
    """Deterministic order: path components compared one by one (codepoint order)."""
    return tuple(item_id.split("/"))


def _claims(ctx, own: str) -> dict[str, SourceDef]:
    """extension -> the SourceDef (other than ``own``) claiming it."""
    if ctx is None or getattr(ctx, "pm", None) is None:
        return {}
    from colorbatch import registry

    out: dict[str, SourceDef] = {}
    for name, sdef in registry.sources(ctx.pm).items():
        if name == own:
            continue
        for ext in normalise_extensions(sdef.extensions):
            out.setdefault(ext, sdef)
    return out


def _exclude_dirs(ctx) -> list[str]:
    """This run's output folders (``RunState.exclude_dirs``); none without a run."""
    state = getattr(ctx, "state", None)
    return list(getattr(state, "exclude_dirs", None) or [])


def _excluded_dirs(ctx) -> set[tuple[int, int]]:
    """Output folders (registered by save steps) that must not be read as inputs."""
    out = set()
    for d in _exclude_dirs(ctx):
        try:
            st = os.stat(d)
        except OSError:
            continue
        out.add((st.st_dev, st.st_ino))
    return out


def _owned_outputs(ctx) -> set[str]:
    """Real paths of files this run's save steps wrote earlier (from their manifests).

    Matters when an output folder is also an input folder: earlier outputs
    there must not come back as inputs.
    """
    from colorbatch.manifest import Manifest

    out: set[str] = set()
    for d in _exclude_dirs(ctx):
        m = Manifest(d)
        for rec in m.records.values():
            if rec.get("output"):
                out.add(os.path.realpath(os.path.join(d, rec["output"])))
    return out


def _walk(root: Path, recursive: bool, ctx) -> list[Path]:
    """Files under ``root``: symlinked folders followed once, loops cut, hidden skipped."""
    excluded = _excluded_dirs(ctx)
    seen: set[tuple[int, int]] = set()
    files: list[Path] = []
    try:
        st = os.stat(root)
        seen.add((st.st_dev, st.st_ino))
    except OSError as exc:
        raise ColorbatchError(f"{root}: cannot read folder ({exc.strerror})") from None
    root_key = (st.st_dev, st.st_ino)
    warned = []

    def onerror(exc: OSError) -> None:
        warned.append(f"{exc.filename}: {exc.strerror}")

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=onerror):
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            full = os.path.join(dirpath, d)
            try:
                dst = os.stat(full)
            except OSError:
                continue  # broken link, loop or no permission
            key = (dst.st_dev, dst.st_ino)
            if key in seen:
                if ctx is not None:
                    ctx.warn(f"{full}: folder already visited (symbolic link loop?); skipped")
                continue
            if key in excluded and key != root_key:
                continue  # the output folder of this run
            seen.add(key)
            keep.append(d)
        dirnames[:] = keep if recursive else []
        for f in filenames:
            if f.startswith("."):
                continue  # hidden files, AppleDouble ._x.jpg, our temporary files
            files.append(Path(dirpath) / f)
    if ctx is not None:
        for w in warned[:5]:
            ctx.warn(f"cannot read folder {w}")
    return files


def _rel_id(path: Path, root: Path) -> str:
    text, prefix = str(path), str(root).rstrip(os.sep) + os.sep
    if text.startswith(prefix) and ".." not in text:
        return text[len(prefix):].replace(os.sep, "/")  # the common case, fast
    rel = os.path.relpath(path, root)
    parts = [p for p in Path(rel).parts if p not in ("", ".")]
    parts = ["_up" if p == ".." else p for p in parts]
    return "/".join(parts)


def _items_for_files(paths: list[Path], root: Path, options, ctx, *, explicit: bool) -> list[Item]:
    """Items for ``paths`` (ids relative to ``root``), filtering by extension.

    ``explicit`` files (named one by one by the user: a single file, a list
    file) are kept whatever their extension, so a bad one is reported rather
    than silently dropped; files found by walking a folder or a glob are kept
    only when their extension is wanted.
    """
    exts = normalise_extensions(getattr(options, "extensions", None) or ())
    claims = _claims(ctx, "files")
    owned = _owned_outputs(ctx) if not explicit else set()
    entries: list[tuple[tuple, int, Item | tuple]] = []
    for p in paths:
        ext = p.suffix.lower()
        if owned and os.path.realpath(p) in owned:
            continue  # an output of this recipe's save step
        rel = _rel_id(p, root)
        if ext in claims:
            entries.append((sort_key(rel), 0, (claims[ext], p, rel)))
        elif ext in exts or explicit:
            if not explicit and p.is_dir():
                continue  # a folder named like an image
            entries.append((sort_key(rel), 0, Item(id=rel, path=p, root=root, kind="image")))
    entries.sort(key=lambda e: e[0])
    out: list[Item] = []
    for _, _, entry in entries:
        if isinstance(entry, Item):
            out.append(entry)
            continue
        sdef, p, rel = entry
        out.extend(_delegate(sdef, p, rel, root, options, ctx))
    return out


def _delegate(sdef: SourceDef, path: Path, rel: str, root: Path, options, ctx) -> list[Item]:
    """Hand one claimed file to its source; re-root the ids under ``root``."""
    try:
        items = list(sdef.enumerate(str(path), options, ctx) or [])
    except ColorbatchError as exc:
        if ctx is not None:
            ctx.fail(Item(id=rel, path=path, root=root, kind=sdef.name), exc)
            return []
        raise
    prefix = rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""
    for it in items:
        if prefix and not it.id.startswith(prefix):
            it.id = prefix + it.id
        it.root = root
    return items


def glob_root(pattern: str) -> Path:
    parts = Path(pattern).parts
    fixed = []
    for p in parts:
        if is_glob(p):
            break
        fixed.append(p)
    return Path(*fixed) if fixed else Path(".")


def read_list_file(list_file: Path) -> list[Path]:
    """Paths listed one per line (blank lines and ``#`` comments skipped)."""
    try:
        text = list_file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ColorbatchError(f"{list_file}: list file is not UTF-8 text") from None
    except OSError as exc:
        raise ColorbatchError(f"{list_file}: cannot read list file ({exc.strerror})") from None
    out = []
    base = list_file.parent
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(line).expanduser()
        out.append(p if p.is_absolute() else base / p)
    return out


def enumerate_files(source, options, ctx) -> list[Item]:
    """The ``files`` layout: a file, a folder, a glob or a ``.txt`` list file."""
    text = str(source)
    path = Path(text).expanduser()
    recursive = bool(getattr(options, "recursive", True))
    if path.is_dir():
        files = _walk(path, recursive, ctx)
        return _items_for_files(files, path, options, ctx, explicit=False)
    if path.is_file():
        if path.suffix.lower() == ".txt":
            listed = read_list_file(path)
            if not listed:
                return []
            try:
                root = Path(os.path.commonpath([os.path.abspath(p.parent) for p in listed]))
            except ValueError:  # different drives (Windows)
                root = path.parent
            return _items_for_files(listed, root, options, ctx, explicit=True)
        return _items_for_files([path], path.parent, options, ctx, explicit=True)
    if is_glob(text):
        root = glob_root(text)
        matches = sorted(_glob.glob(text, recursive=True))
        files = [Path(m) for m in matches if not os.path.isdir(m)]
        files = [f for f in files if not any(part.startswith(".") for part in f.relative_to(root).parts)] if files else []
        if not files and ctx is not None:
            ctx.warn(f"{text}: the pattern matches no files")
        return _items_for_files(files, root, options, ctx, explicit=False)
    if os.path.exists(path):
        from colorbatch.images import special_file_kind

        raise ColorbatchError(f"{path}: source is {special_file_kind(os.stat(path).st_mode)}; give an image "
                              "file, a folder, a glob or a list file")
    if os.path.lexists(path):
        raise ColorbatchError(f"{path}: source is not a readable file or folder (broken link?)")
    raise ColorbatchError(f"{path}: source not found; check the load step's source path")


# --------------------------------------------------------------------------- #
# ILSVRC2017_DET
# --------------------------------------------------------------------------- #

ILSVRC_SPLITS = ("train", "val")


def ilsvrc_root(source) -> tuple[Path, str | None] | None:
    """(the ``ILSVRC`` folder, the split named by the path) or None when not that layout.

    Accepts the dataset root, the ``ILSVRC`` folder, ``Data/DET`` or ``Data/DET/<split>``.
    """
    p = Path(str(source)).expanduser()
    if not p.is_dir():
        return None
    if (p / "ILSVRC" / "Data" / "DET").is_dir() or (p / "ILSVRC" / "ImageSets" / "DET").is_dir():
        return p / "ILSVRC", None
    if (p / "Data" / "DET").is_dir() or (p / "ImageSets" / "DET").is_dir():
        return p, None
    if p.name == "DET" and p.parent.name == "Data":
        return p.parent.parent, None
    if p.parent.name == "DET" and p.parent.parent.name == "Data":
        return p.parent.parent.parent, p.name
    return None


def enumerate_ilsvrc(source, options, ctx) -> list[Item]:
    """The ILSVRC2017_DET layout; uses ``ImageSets/DET/<split>.txt`` when present."""
    found = ilsvrc_root(source)
    if found is None:
        if not Path(str(source)).exists():
            raise ColorbatchError(f"{source}: source not found; check the load step's source path")
        raise ColorbatchError(
            f"{source}: not an ILSVRC2017_DET folder (expected ILSVRC/Data/DET/<split> or "
            "ILSVRC/ImageSets/DET); give the dataset root or use layout = \"files\""
        )
    root, path_split = found
    split = getattr(options, "split", None) or path_split or "train"
    if path_split and split != path_split:
        raise ColorbatchError(
            f"{source}: the path is the {path_split!r} split but split = {split!r}; remove one of them"
        )
    data = root / "Data" / "DET" / split
    list_file = root / "ImageSets" / "DET" / f"{split}.txt"
    if list_file.is_file():
        names = []
        for line in list_file.read_text(encoding="utf-8").splitlines():
            parts = line.split(None, 1)
            if parts:
                names.append(parts[0] + ".JPEG")
        ids = sorted(set(names), key=sort_key)
    elif data.is_dir():
        exts = normalise_extensions(getattr(options, "extensions", None) or (".jpeg", ".jpg"))
        ids = sorted(
            (_rel_id(p, data) for p in _walk(data, True, ctx) if p.suffix.lower() in exts), key=sort_key
        )
    else:
        raise ColorbatchError(
            f"{root}: no {split} split (neither {list_file} nor the folder {data} exists)"
        )
    return ItemList(ids, lambda rel: _ilsvrc_item(rel, data, split))


def _ilsvrc_item(rel: str, data: Path, split: str) -> Item:
    item = Item(id=rel, path=data / rel, root=data, kind="image", meta={"split": split})
    head = rel.split("/")
    synset = next((h for h in head[:-1] if h.startswith("n") and h[1:].isdigit()), None)
    if synset:
        item.meta["synset"] = synset
    return item


FILES = SourceDef(
    name="files",
    enumerate=enumerate_files,
    help="a file, a folder (recursive), a glob or a .txt list of paths",
)
ILSVRC = SourceDef(
    name="ilsvrc",
    enumerate=enumerate_ilsvrc,
    help="the ILSVRC2017_DET layout (ILSVRC/Data/DET/{train,val} and ImageSets/DET lists)",
)

CORE_SOURCES = [FILES, ILSVRC]
