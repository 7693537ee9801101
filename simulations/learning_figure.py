"""A figure to look at what a federation's rounds did to pictures no edge saw.

The held-out total can fall while a model paints blotches (a magenta cloud, a lime glow on a grey
animal) that an average over pairs does not show; every learning run is to be looked at, not only
scored. ``round_sheet`` stylizes a few seeded held-out (content, style) pairs with each checkpoint
given, at the content's size, and draws content | style | one column per checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stylizer.images import image_files, load_image
from stylizer.render import fit_within, resize_frame

SIDE = 384  # longest side of the pictures stylized for the figure (px)


def sheet_pairs(heldout: Path, count: int, seed: int = 7) -> list[tuple[Path, Path]]:
    """``count`` (content, style) files of ``heldout/content`` and ``heldout/style``: a seeded choice,
    no content or style twice (fewer where the folder holds fewer)."""
    contents, styles = image_files(Path(heldout) / "content"), image_files(Path(heldout) / "style")
    count = min(count, len(contents), len(styles))
    rng = np.random.default_rng(seed)
    return [(contents[i], styles[j]) for i, j in zip(rng.choice(len(contents), count, replace=False),
                                                   rng.choice(len(styles), count, replace=False), strict=True)]


def round_sheet(heldout: Path, checkpoints: dict[str, Path], path: Path, count: int = 6, seed: int = 7) -> Path:
    """Write ``path`` (PNG): for ``count`` seeded held-out pairs, the content, the style and each of
    ``checkpoints`` (title → checkpoint file) stylizing it at the content's size (longest side at most
    ``SIDE`` px). Returns ``path``; ValueError when the folder holds no pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stylizer import Stylizer

    pairs = sheet_pairs(heldout, count, seed)
    if not pairs:
        raise ValueError(f"held-out folder {heldout} holds no content/ and style/ pictures to draw")
    stylizers = {title: Stylizer.from_checkpoint(file, allow_download=False) for title, file in checkpoints.items()}
    columns = ["content", "style", *stylizers]
    fig, axes = plt.subplots(len(pairs), len(columns), figsize=(3.0 * len(columns), 2.4 * len(pairs)), squeeze=False)
    for row, (content_file, style_file) in enumerate(pairs):
        content = load_image(content_file)
        content = resize_frame(content, fit_within(*content.shape[:2], SIDE))
        style = load_image(style_file)
        images = {"content": content, "style": style,
                  **{title: s.stylize_frame(content, style) for title, s in stylizers.items()}}
        for c, column in enumerate(columns):
            ax = axes[row, c]
            ax.imshow(images[column])
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(column, fontsize=10)
        axes[row, 0].set_ylabel(content_file.stem, fontsize=8)
        axes[row, 1].set_ylabel(style_file.stem, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
