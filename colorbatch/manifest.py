"""The output manifest that makes batch runs resumable.

Each output folder holds ``.colorbatch-manifest.jsonl`` (rank r > 0 of a
distributed run writes ``.colorbatch-manifest.rank{r}.jsonl``); reading merges
them all, the last record of an id winning. One JSON line per written output::

    {"id": "2021/a.jpg", "input": {"path": ..., "size": ..., "mtime_ns": ...},
     "output": "2021/a.png", "model": "<model id or null>", "options": {...},
     "time": "2026-01-01T12:00:00"}

An item is done when its record matches the input's size and modification
time, the model id and the output options, and the output file still exists.
A torn last line (a crash mid-write) is ignored.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

MANIFEST_NAME = ".colorbatch-manifest.jsonl"


def manifest_name(rank: int = 0) -> str:
    return MANIFEST_NAME if rank == 0 else f".colorbatch-manifest.rank{rank}.jsonl"


def input_identity(path) -> dict | None:
    """``{"path", "size", "mtime_ns"}`` of an input file, or None when it cannot be read."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class Manifest:
    """Records of the outputs written into ``folder``."""

    def __init__(self, folder, rank: int = 0):
        self.folder = Path(folder)
        self.rank = rank
        self.path = self.folder / manifest_name(rank)
        self.records: dict[str, dict] = {}
        self.outputs: set[str] = set()  # every output any record names: files colorbatch wrote
        self._fh = None
        self.load()

    def load(self) -> None:
        self.records.clear()
        self.outputs.clear()
        if not self.folder.is_dir():
            return
        files = sorted(self.folder.glob(".colorbatch-manifest*.jsonl"))
        for f in files:
            try:
                lines = f.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a torn line from a crash
                if isinstance(rec, dict) and isinstance(rec.get("id"), str):
                    self.records[rec["id"]] = rec
                    if isinstance(rec.get("output"), str):
                        self.outputs.add(rec["output"])

    def get(self, item_id: str) -> dict | None:
        return self.records.get(item_id)

    def is_done(self, item_id: str, input_path, model: Any, options: dict) -> bool:
        rec = self.records.get(item_id)
        if rec is None:
            return False
        ident = input_identity(input_path)
        if input_path is not None:
            old = rec.get("input") or {}
            if ident is None or old.get("size") != ident["size"] or old.get("mtime_ns") != ident["mtime_ns"]:
                return False
        if rec.get("model") != model:
            return False
        if rec.get("options") != _jsonable(options):
            return False
        out = rec.get("output")
        return bool(out) and (self.folder / out).is_file()

    def owns(self, output_rel: str) -> bool:
        """True when some record says colorbatch wrote ``output_rel``."""
        return output_rel in self.outputs

    def add(self, item_id: str, input_path, output_rel: str, model: Any, options: dict, **extra) -> dict:
        rec = {
            "id": item_id,
            "input": input_identity(input_path),
            "output": output_rel,
            "model": model,
            "options": _jsonable(options),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **extra,
        }
        if self._fh is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write(_json_line(rec))
        self._fh.flush()
        self.records[item_id] = rec
        self.outputs.add(output_rel)
        return rec

    def close(self) -> None:
        if self._fh is not None:
            try:
                os.fsync(self._fh.fileno())
            except OSError:
                pass
            self._fh.close()
            self._fh = None


def _json_line(rec: dict) -> str:
    """One JSON line; names that are not valid UTF-8 (surrogate escapes) are written as
    ``\\udcXX`` escapes, which read back to the same name."""
    line = json.dumps(rec, default=str, ensure_ascii=False) + "\n"
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(rec, default=str) + "\n"
    return line


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))
