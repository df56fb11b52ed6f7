"""The studio serves only files under FOLDER and OUT, and writes only OUT and hint sidecars."""
from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

import pytest

from colorbatch_studio.files import Refused, list_images, safe_join


@pytest.mark.parametrize("rel", ["../../etc/passwd", "/etc/passwd", "a/../../x.png", "..", "sub/../../photos/a.png",
                                 "", "a\x00.png", "C:/Windows/win.ini", "..\\..\\etc\\passwd"])
def test_safe_join_refuses_what_leaves_the_folder(tmp_path, rel):
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(Refused):
        safe_join(tmp_path, rel)


def test_safe_join_follows_links_and_refuses_one_that_points_outside(tmp_path):
    inside = tmp_path / "in"
    inside.mkdir()
    (inside / "a.png").write_bytes(b"x")
    secret = tmp_path / "secret.txt"
    secret.write_text("no")
    os.symlink(secret, inside / "link.png")
    assert safe_join(inside, "a.png") == (inside / "a.png").resolve()
    assert safe_join(inside, "./a.png") == (inside / "a.png").resolve()
    with pytest.raises(Refused):
        safe_join(inside, "link.png")


def test_the_listing_is_what_colorize_would_take(tmp_path):
    for name in ("b.png", "a.JPG", "sub/c.tif", ".hidden.png", ".cache/d.png", "notes.txt", "a.hints.json"):
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    from colorbatch.api import IMAGE_EXTENSIONS

    assert list_images(tmp_path, IMAGE_EXTENSIONS) == ["a.JPG", "b.png", "sub/c.tif"]


def test_the_server_refuses_traversal_and_absolute_paths(folder, tmp_path, models, live_factory):
    out = tmp_path / "out"
    live = live_factory(folder, out, models["aware"])
    (out / "x.txt").parent.mkdir(parents=True, exist_ok=True)
    (out / "x.txt").write_text("an output")
    ok, body = live.raw_get("/files/in/a.png")
    assert ok == 200 and body[:4] == b"\x89PNG"
    assert live.raw_get("/files/out/x.txt") == (200, b"an output")
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    refused = [
        "/files/in/../../etc/passwd",
        "/files/in/..%2F..%2Fetc%2Fpasswd",
        "/files/in/%2Fetc%2Fpasswd",
        "/files/in//etc/passwd",
        "/files/in/" + quote(str(outside), safe=""),
        "/files/in/../outside.txt",
        "/files/out/../photos/a.png",
        "/api/thumb?id=" + quote("../../etc/passwd", safe=""),
        "/api/thumb?id=" + quote("/etc/passwd", safe=""),
        "/api/image?id=" + quote(str(outside), safe=""),
        "/api/preview?id=" + quote("sub/../../outside.txt", safe=""),
    ]
    for target in refused:
        status, body = live.raw_get(target)
        assert status in (403, 404), (target, status)
        assert b"secret" not in body and b"root:" not in body, target
    # the plain ones are refused outright (403), not merely missing
    assert live.raw_get("/files/in/../../etc/passwd")[0] == 403
    assert live.raw_get("/files/in/%2Fetc%2Fpasswd")[0] == 403
    assert live.raw_get("/api/thumb?id=" + quote("/etc/passwd", safe=""))[0] == 403


def test_writes_go_only_to_out_and_the_sidecars(folder, tmp_path, models, live_factory):
    import urllib.request

    out = tmp_path / "out"
    before = {p for p in tmp_path.rglob("*")}
    live = live_factory(folder, out, models["aware"])
    for rel in ("a.png", "sub/b.png"):
        urllib.request.urlopen(live.url + "api/thumb?id=" + quote(rel, safe="")).read()
        body = json.dumps({"points": [{"x": 5, "y": 6, "radius": 3, "color": "#ff0000"}], "chroma": 0.9}).encode()
        req = urllib.request.Request(live.url + "api/state?id=" + quote(rel, safe=""), data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req).read()
    new = {p for p in tmp_path.rglob("*")} - before
    for p in new:
        assert p.is_relative_to(out) or p.name.endswith(".hints.json"), p
    assert (folder / "a.hints.json").is_file() and (folder / "sub" / "b.hints.json").is_file()
    assert json.loads((folder / "a.hints.json").read_text())["chroma"] == 0.9
    assert json.loads((folder / "sub" / "b.hints.json").read_text())["chroma"] == 0.9
    assert not (out / ".studio" / "state.json").exists()
