"""The cloud's own yardstick: Eq. 5 losses of a global model on fixed held-out pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord

from stylizer.factory import model_from_description
from stylizer.images import IMAGE_SUFFIXES, ImageError, image_files, load_image, load_image_dir
from stylizer.losses import TargetFeatures, target_features
from stylizer.training import PairSampler, evaluate

DEFAULT_HELDOUT = "heldout"  # in the cloud's data folder: the sample media's held-out split


def describe_heldout(folder: Path) -> str:
    """'4 content pictures and 4 styles in FOLDER'; ValueError (one line, what to do) for a folder a
    cloud could not score on (missing, empty, or holding a picture that does not decode: every one is
    read here), so ``fedvst cloud serve --heldout`` refuses it before anything starts."""
    if not Path(folder).is_dir():
        raise ValueError(f"held-out folder {folder} is missing: pass --heldout a folder with content/ and style/ "
                         "images, or leave --heldout out to use the sample media's held-out split")
    counts = []
    for sub in ("content", "style"):
        path = Path(folder) / sub
        found = image_files(path)
        if not found:
            raise ValueError(f"held-out folder {folder} needs images in {sub}/ ({', '.join(sorted(IMAGE_SUFFIXES))}): "
                             "pictures no edge trains on, which score every round")
        for picture in found:
            try:
                load_image(picture, f"held-out {sub}")
            except ImageError as exc:
                raise ValueError(f"held-out picture {picture} is unreadable ({exc}): replace or remove it") from None
        counts.append(len(found))
    return f"{counts[0]} content pictures and {counts[1]} styles in {folder}"


class HeldOutSet:
    """Fixed (content, style) batches from ``folder/content`` and ``folder/style``; callable on arrays."""

    def __init__(self, folder: Path, description: dict[str, Any], base_size: int, images: int,
                 seed: int = 2020) -> None:
        contents = load_image_dir(folder / "content", "held-out content")
        styles = load_image_dir(folder / "style", "held-out style")
        sampler = PairSampler(contents, styles, base_size=base_size, seed=seed)
        self.batches = list(sampler.batches(max(1, images // 2), batch_size=2))
        self.description = description
        self.targets: list[TargetFeatures] | None = None  # the batches' Eq. 5 targets: the same every round

    def __call__(self, arrays: ArrayRecord) -> dict[str, float]:
        model = model_from_description(self.description, arrays.to_torch_state_dict(), allow_download=False)
        if self.targets is None:  # the description fixes the encoder, so these never change
            self.targets = [target_features(model.encoder, b.content_target, b.style_target) for b in self.batches]
        values = evaluate(model, self.batches, targets=self.targets)
        return {"heldout_total": values.total, "heldout_content": values.content, "heldout_style": values.style}
