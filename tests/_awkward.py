"""A hand-built ICC v2 RGB profile for tests (no profile files needed).

Its red and green primaries are sRGB's green and red: a pure red pixel tagged
with it is green once converted to sRGB, so a test can see that the profile was
honoured.
"""
import struct

def _s15(v):
    return struct.pack(">i", int(round(v * 65536)))

def _xyz_tag(x, y, z):
    return b"XYZ " + b"\0" * 4 + _s15(x) + _s15(y) + _s15(z)

def _desc_tag(text):
    a = text.encode("ascii") + b"\0"
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(a)) + a + b"\0" * 8 + b"\0" * 3 + b"\0" * 67

def _curv(gamma):
    return b"curv" + b"\0" * 4 + struct.pack(">I", 1) + struct.pack(">H", int(round(gamma * 256))) + b"\0\0"

def rgb_icc_profile(description="swapped red-green test RGB", red=(0.3851, 0.7169, 0.0971),
                    green=(0.4361, 0.2225, 0.0139), blue=(0.1431, 0.0606, 0.7141), gamma=2.2):
    tags = [
        (b"desc", _desc_tag(description)),
        (b"wtpt", _xyz_tag(0.9642, 1.0, 0.8249)),
        (b"rXYZ", _xyz_tag(*red)),
        (b"gXYZ", _xyz_tag(*green)),
        (b"bXYZ", _xyz_tag(*blue)),
        (b"rTRC", _curv(gamma)),
        (b"gTRC", _curv(gamma)),
        (b"bTRC", _curv(gamma)),
        (b"cprt", b"text" + b"\0" * 4 + b"no copyright\0"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table = b""
    data = b""
    for sig, body in tags:
        while (offset + len(data)) % 4:
            data += b"\0"
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    body = struct.pack(">I", len(tags)) + table + data
    while len(body) % 4:
        body += b"\0"
    size = 128 + len(body)
    header = (struct.pack(">I", size) + b"\0" * 4 + bytes([2, 0x10, 0, 0]) + b"mntr" + b"RGB " + b"XYZ "
              + b"\0" * 12 + b"acsp" + b"\0" * 4 + b"\0" * 4 + b"\0" * 8 + b"\0" * 8 + struct.pack(">I", 0)
              + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + b"\0" * 4 + b"\0" * 16 + b"\0" * 28)
    assert len(header) == 128, len(header)
    return header + body


# --------------------------------------------------------------------------- #
# awkward inputs, as found in real archives
# --------------------------------------------------------------------------- #

W, H = 32, 24  # the size of every good input (before EXIF rotation)


def _arr(mode="RGB", seed=0):
    from colorbatch.testing import make_image_array

    return make_image_array((W, H), mode, "noise" if mode in ("RGB", "CMYK") else "gradient", seed)


def make_awkward_inputs(folder):
    """Write every kind of awkward input into ``folder``.

    Returns ``(good, bad)``: ``good`` maps a relative name to the (width, height)
    its output must have; ``bad`` maps a relative name to a piece of the reason
    its failure must give.
    """
    import os
    from pathlib import Path

    import numpy as np
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    good, bad = {}, {}

    def put(name, im, size=(W, H), **kw):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        im.save(path, **kw)
        good[name] = size

    rgb = Image.fromarray(_arr("RGB"))
    gray = Image.fromarray(_arr("L"))

    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    put("exif_rotated.jpg", rgb, size=(H, W), exif=exif.tobytes(), quality=95)
    put("mode_1.png", gray.convert("1"))
    put("mode_L.png", gray)
    put("mode_LA.png", Image.fromarray(_arr("LA"), "LA"))
    put("mode_P.png", rgb.convert("P"))
    put("mode_P_transparent.png", gray.convert("P"), transparency=0)
    put("mode_RGBA.png", Image.fromarray(_arr("RGBA"), "RGBA"))
    put("cmyk.jpg", rgb.convert("CMYK"), quality=95)
    put("gray16.png", Image.fromarray(_arr("I;16")))
    put("gray16.tif", Image.fromarray(_arr("I;16")))
    put("mode_I.tif", Image.fromarray(_arr("I")))
    put("mode_F.tif", Image.fromarray(_arr("F")))
    put("icc_profile.png", rgb, icc_profile=rgb_icc_profile())
    frames = [Image.fromarray(_arr("RGB", seed=s)).convert("P") for s in range(3)]
    path = folder / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    good["animated.gif"] = (W, H)
    put("ünïcode name with spaces.png", gray)
    put("folder.jpg/inside.png", gray)  # a folder named like an image
    try:
        import tifffile

        rgb16 = (np.random.default_rng(3).random((H, W, 3)) * 65535).astype(np.uint16)
        tifffile.imwrite(folder / "rgb16.tif", rgb16, photometric="rgb")
        good["rgb16.tif"] = (W, H)
    except ImportError:  # pragma: no cover
        pass

    (folder / "empty.jpg").write_bytes(b"")
    bad["empty.jpg"] = "0 bytes"
    import io

    buf = io.BytesIO()
    rgb.resize((W * 4, H * 4)).save(buf, format="JPEG", quality=95)
    data = buf.getvalue()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    bad["truncated.jpg"] = "truncated"
    (folder / "random_bytes.jpg").write_bytes(np.random.default_rng(4).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    bad["random_bytes.jpg"] = "not an image"
    (folder / "text.png").write_text("this is not a picture\nbut a note\n", encoding="utf-8")
    bad["text.png"] = "text"
    (folder / "bomb.png").write_bytes(png_header(50_000, 50_000))
    bad["bomb.png"] = "COLORBATCH_MAX_PIXELS"

    (folder / "notes.txt").write_text("not an image extension: ignored by load\n")
    (folder / "loop").mkdir()
    os.symlink("..", folder / "loop" / "back")  # a symbolic link loop
    return good, bad


def png_header(width, height):
    """A PNG that declares ``width`` x ``height`` but holds no pixel data."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
