"""A reader for Qt binary resource files (``.rcc``), zlib-compressed entries only (no Qt needed).

Layout (Qt's ``rcc`` format versions 1–3, all big-endian): a 20-byte header ``qres``, version,
tree offset, data offset, names offset (version 3 adds a 4-byte flags word). The tree is an
array of nodes, 14 bytes each (22 from version 2 on, a last-modified stamp appended): name
offset (4), flags (2), then for a directory the child count (4) and first child index (4), for a
file the territory and language (2 + 2) and the data offset (4). A name is a 2-byte length, a
4-byte hash and that many UTF-16BE code units; a file's data is a 4-byte length and the bytes,
which for a compressed entry (flag 1) are Qt's ``qCompress`` format: a 4-byte uncompressed
length and a zlib stream. Zstandard entries (flag 4, Qt 6) are refused with a clear error.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

_COMPRESSED = 0x01
_DIRECTORY = 0x02
_ZSTD = 0x04
MAX_ENTRY_BYTES = 256 << 20  # no picture in a resource file is larger; a bigger length means a corrupt file


class RccError(ValueError):
    """A resource file this reader cannot parse, with a one-line reason."""


def _read(fmt: str, data: bytes, offset: int) -> tuple[int, ...]:
    try:
        return struct.unpack_from(fmt, data, offset)
    except struct.error as error:
        raise RccError(f"truncated resource file (reading {fmt} at byte {offset})") from error


def iter_rcc(data: bytes) -> Iterator[tuple[str, bytes]]:
    """Every file in an rcc blob as (path with '/' separators, uncompressed bytes), in tree order."""
    if data[:4] != b"qres":
        raise RccError("not a Qt resource file (no 'qres' magic)")
    version, tree, payload, names = _read(">IIII", data, 4)
    if version not in (1, 2, 3):
        raise RccError(f"Qt resource format version {version} is not supported (1–3 are)")
    node_size = 14 if version == 1 else 22

    def name_at(node: int) -> str:
        (offset,) = _read(">I", data, tree + node * node_size)
        (length,) = _read(">H", data, names + offset)
        start = names + offset + 6
        return data[start:start + 2 * length].decode("utf-16-be")

    def file_bytes(node: int, flags: int) -> bytes:
        (offset,) = _read(">I", data, tree + node * node_size + 10)
        (size,) = _read(">I", data, payload + offset)
        if size > MAX_ENTRY_BYTES:
            raise RccError(f"entry of {size} bytes at node {node}: corrupt resource file")
        blob = data[payload + offset + 4:payload + offset + 4 + size]
        if len(blob) != size:
            raise RccError(f"entry at node {node} runs past the end of the file")
        if flags & _ZSTD:
            raise RccError("zstd-compressed entries (Qt 6) are not supported by this zlib-only reader")
        if flags & _COMPRESSED:
            try:
                return zlib.decompress(blob[4:])
            except zlib.error as error:
                raise RccError(f"entry at node {node} is not a valid zlib stream: {error}") from error
        return blob

    stack: list[tuple[int, str, int]] = [(0, "", 0)]
    while stack:
        node, prefix, depth = stack.pop()
        if depth > 64:
            raise RccError("resource tree deeper than 64 levels: corrupt resource file")
        (flags,) = _read(">H", data, tree + node * node_size + 4)
        name = "" if node == 0 else name_at(node)
        path = f"{prefix}/{name}" if prefix else name
        if flags & _DIRECTORY:
            count, first = _read(">II", data, tree + node * node_size + 6)
            if count > 1 << 20:
                raise RccError(f"directory node {node} claims {count} children: corrupt resource file")
            stack.extend((first + i, path, depth + 1) for i in reversed(range(count)))
        else:
            yield path, file_bytes(node, flags)
