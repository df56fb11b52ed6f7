"""Minimal reader for Qt binary resource files (.rcc), standard library only.

    from qt_rcc import read_rcc
    for path, data in read_rcc(open("x.rcc", "rb").read()): ...

Supports format versions 1-3 with uncompressed and zlib-compressed entries
(zstd-compressed entries raise ValueError).
"""
import struct
import zlib

DIRECTORY, COMPRESSED, COMPRESSED_ZSTD = 0x02, 0x01, 0x04


def read_rcc(buf: bytes):
    """Yield (path, bytes) for every file in an .rcc blob."""
    if buf[:4] != b"qres":
        raise ValueError("not a Qt rcc file")
    version, tree, data, names = struct.unpack(">IIII", buf[4:20])
    node_size = 14 if version == 1 else 22

    def name_at(off):
        n = struct.unpack(">H", buf[names + off:names + off + 2])[0]
        raw = buf[names + off + 6:names + off + 6 + 2 * n]
        return raw.decode("utf-16-be")

    def node(i):
        off = tree + i * node_size
        name_off, flags = struct.unpack(">IH", buf[off:off + 6])
        return off, name_off, flags

    def walk(i, prefix):
        off, name_off, flags = node(i)
        name = name_at(name_off) if i else ""
        path = f"{prefix}/{name}" if name else prefix
        if flags & DIRECTORY:
            count, first = struct.unpack(">II", buf[off + 6:off + 14])
            for c in range(first, first + count):
                yield from walk(c, path)
        else:
            doff = struct.unpack(">I", buf[off + 10:off + 14])[0]
            size = struct.unpack(">I", buf[data + doff:data + doff + 4])[0]
            blob = buf[data + doff + 4:data + doff + 4 + size]
            if flags & COMPRESSED_ZSTD:
                raise ValueError(f"{path}: zstd-compressed entry not supported")
            if flags & COMPRESSED:
                blob = zlib.decompress(blob[4:])
            yield path.lstrip("/"), blob

    yield from walk(0, "")
