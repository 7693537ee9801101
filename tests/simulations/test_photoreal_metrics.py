"""region_inconsistency: one colour map per smooth region scores ≈ 0, a glow painted on a ramp does not."""

import numpy as np

from simulations.photoreal_metrics import ramp_regions, region_inconsistency


def ramp_picture() -> np.ndarray:
    """A 200×320 grey vignette ramp (a smooth wall) with a textured band across the middle."""
    rng = np.random.default_rng(0)
    xs = np.linspace(60, 200, 320)[None, :].repeat(200, axis=0)
    picture = np.stack([xs, xs * 0.95, xs * 0.9], axis=2)
    picture[90:110] = rng.integers(0, 256, (20, 320, 3))
    return np.clip(picture + 0.5, 0, 255).astype(np.uint8)


def test_a_global_colour_map_is_consistent_and_a_glow_on_the_ramp_is_not():
    content = ramp_picture()
    labels, count = ramp_regions(content)
    assert count == 2  # the ramp above and below the textured band; the band itself is no smooth region
    assert not labels[95:105].any()
    matrix = np.array([[0.8, 0.1, 0.0], [0.0, 0.7, 0.1], [0.1, 0.0, 0.6]])
    global_map = np.clip(content.astype(float) @ matrix.T + [20, 10, 30] + 0.5, 0, 255).astype(np.uint8)
    p99, largest = region_inconsistency(global_map, content)
    assert p99 < 1.0 and largest < 1.5, (p99, largest)  # rounding only
    glow = global_map.astype(float)
    yy, xx = np.mgrid[:200, :320]
    blob = 25.0 * np.exp(-((xx - 80) ** 2 + (yy - 40) ** 2) / (2 * 30.0 ** 2))  # a yellow glow on the upper ramp
    glow[..., 0] += blob
    glow[..., 1] += blob
    p99, largest = region_inconsistency(np.clip(glow + 0.5, 0, 255).astype(np.uint8), content)
    assert p99 > 5.0 and largest > 10.0, (p99, largest)
