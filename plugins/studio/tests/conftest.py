"""Fixtures for the studio's tests: small checkpoints (hint-aware and plain), a photo folder, a live server."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("starlette", reason='the studio plugin is not installed (pip install -e "plugins/studio[test]")')
pytest.importorskip("uvicorn", reason='the studio plugin is not installed (pip install -e "plugins/studio[test]")')
pytest.importorskip("colorbatch_studio", reason='the studio plugin is not installed (pip install -e "plugins/studio[test]")')
torch = pytest.importorskip("torch")

from studio_testlib import Live, _net, write_folder  # noqa: E402


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict:
    from colorbatch.models.checkpoint import save_checkpoint

    d = tmp_path_factory.mktemp("models")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {"aware": Path(save_checkpoint(d / "aware.safetensors", _net(True), {"test": True})),
                "plain": Path(save_checkpoint(d / "plain.safetensors", _net(False), {"test": True}))}
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def folder(tmp_path) -> Path:
    return write_folder(tmp_path / "photos")


@pytest.fixture
def live_factory():
    started = []

    def start(folder: Path, out: Path, model: Path, size: int = 128):
        from colorbatch_studio.engine import Studio

        live = Live(Studio(folder, out, model=str(model), size=size, device="cpu"))
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()
