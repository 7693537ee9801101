"""The curated list (``curated.tsv``, kept in the repository): which corpus files are real photographs
and clips, their sha256, the group one split keeps together, and that split.

A path is ``<source key>/<path inside the source's archive>``; a path through a Qt resource file
(``…/name.rcc/<entry>``) names an entry inside that ``.rcc`` member. The split is written in the
list itself, once, by the rule in its header; nothing else decides it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

KINDS = ("photo", "clip")
SPLITS = ("train", "heldout")
RCC_MARK = ".rcc/"


@dataclass(frozen=True)
class CuratedFile:
    """One curated file (see the module docstring)."""

    path: str
    sha256: str
    kind: str
    group: str
    split: str

    @property
    def source_key(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def member(self) -> str:
        """Path inside the source's archive (for an rcc entry: the .rcc file's path)."""
        inner = self.path.split("/", 1)[1]
        return inner.split(RCC_MARK, 1)[0] + ".rcc" if RCC_MARK in inner else inner

    @property
    def rcc_entry(self) -> str | None:
        """The entry's path inside its .rcc file, or None for a plain archive member."""
        inner = self.path.split("/", 1)[1]
        return inner.split(RCC_MARK, 1)[1] if RCC_MARK in inner else None


def parse_curated(text: str) -> list[CuratedFile]:
    """Rows of a curated list (``#`` comments, a header, then tab-separated rows); a malformed row is a ValueError."""
    rows: list[CuratedFile] = []
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not lines or lines[0].split("\t") != ["path", "sha256", "kind", "group", "split"]:
        raise ValueError("curated list lacks its header 'path sha256 kind group split'")
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != 5:
            raise ValueError(f"curated list row {number} has {len(cells)} cells, expected 5")
        row = CuratedFile(*cells)
        if row.kind not in KINDS or row.split not in SPLITS or len(row.sha256) != 64 or "/" not in row.path:
            raise ValueError(f"curated list row {number} is malformed: {line[:80]}")
        rows.append(row)
    return rows


def read_curated() -> list[CuratedFile]:
    """The curated list shipped with fedvst."""
    return parse_curated(resources.files("fedvst.corpus").joinpath("curated.tsv").read_text(encoding="utf-8"))
