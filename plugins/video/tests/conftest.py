"""Fixtures for the video plugin's tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from video_testlib import make_clip  # noqa: F401


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("clips")
    return make_clip(d / "film.mp4")
