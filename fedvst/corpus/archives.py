"""Read named members out of a Debian package (.deb) or a wheel (.whl) without installing or unpacking it.

A .deb is an ``ar`` archive whose ``data.tar.{xz,gz,bz2}`` holds the files; it is read as a
stream, member by member, and only the names asked for are kept (tar's own path checks are not
needed: nothing is extracted to disk here). A wheel is a zip. Names are paths without a leading
``./``.
"""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

MAX_MEMBER_BYTES = 1 << 30  # no corpus file is near this; a larger member is refused, not read


class ArchiveError(ValueError):
    """An archive that cannot be read, with a one-line reason."""


def _deb_data_tar(handle, size: int) -> tuple[str, int]:
    """Position ``handle`` at the data.tar member of an ar archive; returns (its name, its size)."""
    if handle.read(8) != b"!<arch>\n":
        raise ArchiveError("not a Debian package (no ar magic)")
    while True:
        header = handle.read(60)
        if len(header) < 60:
            raise ArchiveError("Debian package without a data.tar member")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            length = int(header[48:58].decode("ascii").strip())
        except ValueError as error:
            raise ArchiveError("corrupt ar header in Debian package") from error
        if length < 0 or length > size:
            raise ArchiveError("corrupt ar member size in Debian package")
        if name.startswith("data.tar"):
            return name, length
        handle.seek(length + (length & 1), 1)


def read_members(archive: Path, wanted: set[str]) -> dict[str, bytes]:
    """The bytes of every member of ``archive`` (.deb or .whl) named in ``wanted`` (absent ones are left out)."""
    archive = Path(archive)
    found: dict[str, bytes] = {}
    if archive.suffix == ".whl":
        try:
            with zipfile.ZipFile(archive) as wheel:
                for info in wheel.infolist():
                    if info.filename in wanted and info.file_size <= MAX_MEMBER_BYTES:
                        found[info.filename] = wheel.read(info)
        except zipfile.BadZipFile as error:
            raise ArchiveError(f"{archive.name} is not a valid wheel: {error}") from error
        return found
    if archive.suffix != ".deb":
        raise ArchiveError(f"{archive.name}: expected a .deb or .whl archive")
    with archive.open("rb") as handle:
        name, _ = _deb_data_tar(handle, archive.stat().st_size)
        if name.endswith(".zst"):
            raise ArchiveError(f"{archive.name}: zstd-compressed data ({name}) is not supported")
        try:
            with tarfile.open(fileobj=handle, mode="r|*") as tar:
                for member in tar:
                    path = member.name[2:] if member.name.startswith("./") else member.name
                    if path in wanted and member.isfile() and member.size <= MAX_MEMBER_BYTES:
                        extracted = tar.extractfile(member)
                        if extracted is not None:
                            found[path] = extracted.read()
                    if len(found) == len(wanted):
                        break
        except (tarfile.TarError, EOFError, OSError) as error:
            raise ArchiveError(f"{archive.name}: corrupt data archive ({error})") from error
    return found
