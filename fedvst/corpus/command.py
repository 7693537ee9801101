"""The corpus command: fetch every source (or some) and report, one line a source."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fedvst.corpus.fetch import fetch_corpus
from fedvst.corpus.sources import SOURCES_BY_KEY


def run(root: Path | None, only: list[str]) -> int:
    """Fetch; exit status 0 when every asked-for source is in, 1 when some were skipped or incomplete."""
    unknown = sorted(set(only) - set(SOURCES_BY_KEY))
    if unknown:
        print(f"error: unknown source {', '.join(unknown)}; sources: {', '.join(SOURCES_BY_KEY)}", file=sys.stderr)
        return 2
    report = fetch_corpus(root, set(only) or None)
    return 1 if report.skipped or report.mismatched else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fedvst.corpus", description=__doc__)
    parser.add_argument("--root", type=Path, help="corpus folder (default: <cache>/corpus)")
    parser.add_argument("--only", nargs="*", default=[], help="source keys to fetch (default: all)")
    args = parser.parse_args(argv)
    sys.exit(run(args.root, args.only))
