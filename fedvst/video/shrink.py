"""Area resampling of frames and planes, fast for the large shrink factors video analysis uses.

OpenCV's ``INTER_AREA`` has a vectorised path for an exact factor of 2 and a slow general one:
shrinking a 1080p luma plane to 512 px wide (3.75×) takes ~4 ms of CPU, halving it 0.1 ms.
"""

from __future__ import annotations

import cv2
import numpy as np


def area_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W[, C]) uint8 or float32 → (h, w[, C]) at ``size`` = (h, w), what ``cv2.resize`` with
    ``INTER_AREA`` gives, faster: halved by exact 2×2 means while both sides are even and stay at
    least the target's, then one ``INTER_AREA`` resize for the rest. Equal to one resize for
    factors of 2ⁿ up to rounding (within 1 level on 8-bit frames), a slightly wider average for
    other factors (a 1080p frame to 512 px wide: 0.1 level apart on average); an enlargement is
    the plain resize."""
    height, width = image.shape[:2]
    out_h, out_w = size
    while height % 2 == 0 and width % 2 == 0 and height // 2 >= out_h and width // 2 >= out_w:
        height, width = height // 2, width // 2
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    if (height, width) != (out_h, out_w):
        image = cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_AREA)
    return image
