"""``python -m fedvst.corpus``: the same as ``fedvst corpus``."""

from fedvst.corpus.command import main

main()
