"""Helpers shared by the watch plugin's tests (a uniquely named module, not conftest.py,
so the tests of several plugins can run in one pytest session)."""
from __future__ import annotations

import json
from pathlib import Path


def read_jsonl(path: Path) -> list[dict]:
    """The JSON records of a JSONL file; a missing file or a partial line reads as nothing."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out
