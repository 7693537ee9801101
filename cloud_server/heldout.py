"""The cloud's own yardstick: Eq. 5 losses of a global model on fixed held-out pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord

from stylizer.factory import model_from_description
from stylizer.images import load_image_dir
from stylizer.training import PairSampler, evaluate


class HeldOutSet:
    """Fixed (content, style) batches from ``folder/content`` and ``folder/style``; callable on arrays."""

    def __init__(self, folder: Path, description: dict[str, Any], base_size: int, images: int,
                 seed: int = 2020) -> None:
        contents = load_image_dir(folder / "content", "held-out content")
        styles = load_image_dir(folder / "style", "held-out style")
        sampler = PairSampler(contents, styles, base_size=base_size, seed=seed)
        self.batches = list(sampler.batches(max(1, images // 2), batch_size=2))
        self.description = description

    def __call__(self, arrays: ArrayRecord) -> dict[str, float]:
        model = model_from_description(self.description, arrays.to_torch_state_dict(), allow_download=False)
        values = evaluate(model, self.batches)
        return {"heldout_total": values.total, "heldout_content": values.content, "heldout_style": values.style}
