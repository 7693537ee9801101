"""The photo corpus: its rcc reader, archive reader, curated split and fetcher, offline on synthetic
packages (the real corpus is never needed; a test that reads it skips where it is absent)."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from fedvst.corpus import CorpusMissingError, corpus_files, load_manifest
from fedvst.corpus import fetch as fetch_module
from fedvst.corpus.archives import read_members
from fedvst.corpus.curated import CuratedFile, parse_curated, read_curated
from fedvst.corpus.rcc import RccError, iter_rcc
from fedvst.corpus.sources import SOURCES_BY_KEY, Source


def make_rcc(files: dict[str, bytes]) -> bytes:
    """A Qt rcc (format 2) holding ``files``, every entry zlib-compressed as Qt's rcc writes them."""
    tree: dict = {}
    for path, data in files.items():
        node = tree
        *folders, name = path.split("/")
        for folder in folders:
            node = node.setdefault(folder, {})
        node[name] = data
    order: list[tuple[str, object]] = [("", tree)]  # breadth first: a directory's children are contiguous
    first_child: dict[int, int] = {}
    index = 0
    while index < len(order):
        _, value = order[index]
        if isinstance(value, dict):
            first_child[index] = len(order)
            order.extend(sorted(value.items()))
        index += 1
    names, payload, entries = b"", b"", b""
    for index, (name, value) in enumerate(order):
        name_offset = len(names)
        names += struct.pack(">HI", len(name), 0) + name.encode("utf-16-be")
        if isinstance(value, dict):
            entries += struct.pack(">IHII", name_offset, 0x02, len(value), first_child[index])
        else:
            blob = struct.pack(">I", len(value)) + zlib.compress(value)
            entries += struct.pack(">IHHHI", name_offset, 0x01, 0, 0, len(payload))
            payload += struct.pack(">I", len(blob)) + blob
        entries += b"\0" * 8  # last-modified stamp (format 2)
    tree_at = 20
    payload_at = tree_at + len(entries)
    names_at = payload_at + len(payload)
    return b"qres" + struct.pack(">IIII", 2, tree_at, payload_at, names_at) + entries + payload + names


def make_deb(path: Path, members: dict[str, bytes]) -> Path:
    """A minimal Debian package (ar: debian-binary, control.tar.xz, data.tar.xz) holding ``members``."""
    def tar_xz(items: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
            for name, data in items.items():
                info = tarfile.TarInfo(f"./{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    def ar_member(name: str, data: bytes) -> bytes:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        return header + data + (b"\n" if len(data) % 2 else b"")

    path.write_bytes(b"!<arch>\n" + ar_member("debian-binary", b"2.0\n") + ar_member("control.tar.xz", tar_xz({}))
                     + ar_member("data.tar.xz", tar_xz(members)))
    return path


def test_rcc_reader_unpacks_nested_compressed_entries():
    files = {"gcompris/src/a/resource/one.webp": b"first" * 100, "gcompris/src/a/resource/two.webp": b"\x00\x01",
             "gcompris/src/b/readme": b"credits"}
    assert dict(iter_rcc(make_rcc(files))) == files


@pytest.mark.parametrize("damage", ["magic", "truncated", "zlib"])
def test_rcc_reader_refuses_a_damaged_file_in_one_line(damage):
    blob = bytearray(make_rcc({"dir/pic.webp": b"x" * 64}))
    if damage == "magic":
        blob[:4] = b"nope"
    elif damage == "truncated":
        del blob[60:]
    else:
        at = blob.index(zlib.compress(b"x" * 64))
        blob[at:at + 2] = b"\xff\xff"
    with pytest.raises(RccError) as error:
        list(iter_rcc(bytes(blob)))
    assert "\n" not in str(error.value)


def test_archive_reader_takes_only_the_members_asked_for(tmp_path):
    deb = make_deb(tmp_path / "pkg_1_all.deb", {"usr/share/a.jpg": b"aaa", "usr/share/b.jpg": b"bbb"})
    assert read_members(deb, {"usr/share/b.jpg", "usr/share/missing.jpg"}) == {"usr/share/b.jpg": b"bbb"}


def test_curated_split_keeps_every_group_on_one_side_and_holds_out_enough():
    rows = read_curated()
    assert len({row.path for row in rows}) == len(rows) and len({row.sha256 for row in rows}) == len(rows)
    sides = defaultdict(set)
    for row in rows:
        sides[row.group].add(row.split)
        assert row.source_key in SOURCES_BY_KEY
    assert all(len(split) == 1 for split in sides.values()), "a group on both sides of the split"
    counts = Counter((row.kind, row.split) for row in rows)
    assert counts[("photo", "heldout")] >= 100 and counts[("clip", "heldout")] >= 2
    assert counts[("photo", "train")] >= 300 and counts[("clip", "train")] >= 1


def test_curated_parser_refuses_a_malformed_row():
    header = "path\tsha256\tkind\tgroup\tsplit\n"
    with pytest.raises(ValueError, match="row 2"):
        parse_curated(header + "src/a.jpg\tabc\tphoto\tg\ttrain\n")
    with pytest.raises(ValueError, match="header"):
        parse_curated("src/a.jpg\n")


def _fake_source(tmp_path, monkeypatch, members: dict[str, bytes], curated: list[CuratedFile]) -> Path:
    root = tmp_path / "corpus"
    (root / "packages").mkdir(parents=True)
    source = Source("fake", "fake-pkg", "1.0-1", "debian", "CC0-1.0", "a test package")
    make_deb(root / "packages" / "fake-pkg_1.0-1_all.deb",
             {**members, "usr/share/doc/fake-pkg/copyright": b"License: CC0-1.0\n"})
    monkeypatch.setattr(fetch_module, "SOURCES", (source,))
    monkeypatch.setattr(fetch_module, "SOURCES_BY_KEY", {"fake": source})
    monkeypatch.setattr(fetch_module, "read_curated", lambda: curated)
    return root


def test_fetch_takes_checked_files_writes_a_manifest_and_resumes(tmp_path, monkeypatch):
    good, other = b"photo bytes", b"clip bytes"
    rcc = make_rcc({"res/pic.webp": b"webp bytes"})
    curated = [CuratedFile("fake/usr/share/a.jpg", hashlib.sha256(good).hexdigest(), "photo", "fake:a", "train"),
               CuratedFile("fake/usr/share/c.avi", hashlib.sha256(other).hexdigest(), "clip", "fake:c", "heldout"),
               CuratedFile("fake/usr/share/x.rcc/res/pic.webp", hashlib.sha256(b"webp bytes").hexdigest(), "photo",
                           "fake:pic", "heldout"),
               CuratedFile("fake/usr/share/changed.jpg", "0" * 64, "photo", "fake:d", "train")]
    root = _fake_source(tmp_path, monkeypatch, {"usr/share/a.jpg": good, "usr/share/c.avi": other,
                                                "usr/share/x.rcc": rcc, "usr/share/changed.jpg": b"new"}, curated)
    lines: list[str] = []
    report = fetch_module.fetch_corpus(root, log=lines.append)
    assert report.files == {"fake": 3} and report.mismatched == {"fake": ["fake/usr/share/changed.jpg"]}
    assert (root / "files/fake/usr/share/x.rcc/res/pic.webp").read_bytes() == b"webp bytes"
    assert (root / "files/fake/COPYRIGHT").read_bytes() == b"License: CC0-1.0\n"
    manifest = load_manifest(root)
    assert sorted(item["path"] for item in manifest["files"]) == sorted(c.path for c in curated[:3])
    assert {item["licence"] for item in manifest["files"]} == {"CC0-1.0"}
    assert corpus_files("clip", "heldout", root) == [root / "files/fake/usr/share/c.avi"]
    assert any("1 of 4 curated files missing or different" in line for line in lines)
    stamp = (root / "files/fake/usr/share/a.jpg").stat().st_mtime_ns
    (root / "packages" / "fake-pkg_1.0-1_all.deb").unlink()  # resuming must not need the archive again
    again = fetch_module.fetch_corpus(root, log=lines.append)
    assert again.files == {"fake": 3} and not again.skipped
    assert (root / "files/fake/usr/share/a.jpg").stat().st_mtime_ns == stamp


def test_a_source_that_cannot_be_had_is_one_line_and_the_rest_still_builds(tmp_path, monkeypatch):
    root = _fake_source(tmp_path, monkeypatch, {}, [])
    missing = Source("gone", "gone-pkg", "2.0", "debian", "CC0-1.0", "absent")
    monkeypatch.setattr(fetch_module, "SOURCES", (missing, fetch_module.SOURCES[0]))
    monkeypatch.setattr(fetch_module.shutil, "which", lambda name: None)
    lines: list[str] = []
    report = fetch_module.fetch_corpus(root, log=lines.append)
    assert list(report.skipped) == ["gone"] and "apt-get is not on this machine" in report.skipped["gone"]
    assert report.files == {"fake": 0}
    assert [line for line in lines if line.startswith("gone:")] == [
        "gone: skipped — apt-get is not on this machine (Debian packages cannot be fetched)"]


def test_a_missing_corpus_names_the_command_that_fetches_it(tmp_path):
    with pytest.raises(CorpusMissingError, match="fedvst corpus"):
        corpus_files("photo", "train", tmp_path / "nowhere")


def test_the_installed_corpus_matches_the_curated_list():
    """Where the real corpus is fetched: every manifest file is present with the curated sha256."""
    try:
        manifest = load_manifest()
    except CorpusMissingError as missing:
        pytest.skip(f"no corpus here ({missing})")
    curated = {row.path: row for row in read_curated()}
    root = fetch_module.corpus_root()
    for item in manifest["files"]:
        row = curated[item["path"]]
        assert (item["sha256"], item["split"]) == (row.sha256, row.split)
        assert (root / "files" / item["path"]).stat().st_size == item["bytes"]
    assert json.loads(json.dumps(manifest)) == manifest
