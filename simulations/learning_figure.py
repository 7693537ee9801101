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


def picture_grid(rows: list[list[np.ndarray]], titles: list[str], labels: list[tuple[str, str]], path: Path,
                 dpi: int = 100) -> Path:
    """Write ``path`` (PNG or JPEG, by its suffix): one row of pictures (H×W×3 uint8) per entry of ``rows``, the columns
    titled ``titles`` on top, each row's first two pictures labelled ``labels[row]``. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), len(titles), figsize=(3.0 * len(titles), 2.4 * len(rows)), squeeze=False)
    for r, pictures in enumerate(rows):
        for c, picture in enumerate(pictures):
            ax = axes[r, c]
            ax.imshow(picture)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=10)
        axes[r, 0].set_ylabel(labels[r][0], fontsize=8)
        axes[r, 1].set_ylabel(labels[r][1], fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def round_sheet(heldout: Path, checkpoints: dict[str, Path], path: Path, count: int = 6, seed: int = 7) -> Path:
    """Write ``path`` (PNG or JPEG): for ``count`` seeded held-out pairs, the content, the style and each of
    ``checkpoints`` (title → checkpoint file) stylizing it at the content's size (longest side at most
    ``SIDE`` px). Returns ``path``; ValueError when the folder holds no pair."""
    from stylizer import Stylizer

    pairs = sheet_pairs(heldout, count, seed)
    if not pairs:
        raise ValueError(f"held-out folder {heldout} holds no content/ and style/ pictures to draw")
    stylizers = {title: Stylizer.from_checkpoint(file, allow_download=False) for title, file in checkpoints.items()}
    rows = []
    for content_file, style_file in pairs:
        content = load_image(content_file)
        content = resize_frame(content, fit_within(*content.shape[:2], SIDE))
        style = load_image(style_file)
        rows.append([content, style, *(s.stylize_frame(content, style) for s in stylizers.values())])
    return picture_grid(rows, ["content", "style", *stylizers], [(c.stem, s.stem) for c, s in pairs], path)
