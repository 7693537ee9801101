"""``fedvst stylize`` below the CLI: a video or a photo through local or edge backends (the demo uses it too)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def _stylizer(checkpoint: Path | None, vgg_weights: Path | None, device: str | None, precision: str):
    from stylizer import Stylizer

    return Stylizer.from_checkpoint(checkpoint, vgg_weights=vgg_weights, device=device, precision=precision)


@dataclass
class RemoteOptions:
    """Edge servers to use instead of the local stylizer."""

    edges: list[str]
    token_file: Path | None = None
    ca: Path | None = None
    share_frames: bool = False


def _backends(remote: RemoteOptions | None, checkpoint: Path | None, vgg_weights: Path | None, device: str | None,
              precision: str) -> list:
    if remote is not None and remote.edges:
        from fedvst.protocol.security import read_token
        from fedvst.remote import RemoteBackend

        token = read_token(remote.token_file)
        return [RemoteBackend(address, token=token, ca=remote.ca, allow_collection=remote.share_frames)
                for address in remote.edges]
    from fedvst.backends import LocalBackend

    return [LocalBackend(_stylizer(checkpoint, vgg_weights, device, precision))]


def run_stylize(source: Path, style: Path, output: Path, options, checkpoint: Path | None = None,
                vgg_weights: Path | None = None, device: str | None = None, precision: str = "auto",
                remote: RemoteOptions | None = None):
    """Stylize a video or a photo locally or on edge servers; returns the Summary."""
    from tqdm import tqdm

    from fedvst.backends import Dispatcher
    from fedvst.pipeline import check_output_kind, check_output_path, stylize_photo, stylize_video
    from fedvst.video.io import probe
    from stylizer.images import IMAGE_SUFFIXES, load_image

    check_output_kind(source, output)
    check_output_path(output, [source, style])
    style_image = load_image(style, "style image")
    is_photo = source.suffix.lower() in IMAGE_SUFFIXES
    total = None if is_photo else (probe(source).frame_count or None)
    with Dispatcher(_backends(remote, checkpoint, vgg_weights, device, precision)) as dispatcher:
        if is_photo:
            return stylize_photo(source, style_image, output, dispatcher, options)
        with tqdm(total=total, unit="frame", desc="stylize", disable=None) as bar:
            return stylize_video(source, style_image, output, dispatcher, options, on_frame=bar.update)
