"""The ``fedvst`` command line. Each command imports its role's code lazily."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Federated edge-assisted photorealistic video style transfer.")


def fail(message: str) -> None:
    """Print a one-line error and exit with status 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@app.command()
def train(
    content: Annotated[Path, typer.Option(help="folder of content images")],
    style: Annotated[Path, typer.Option(help="folder of style images")],
    steps: Annotated[int, typer.Option(min=1, help="optimizer steps")],
    out: Annotated[Path, typer.Option(help="checkpoint to write (.safetensors; .json beside it)")],
    init: Annotated[Path | None, typer.Option(help="start from this checkpoint")] = None,
    base_size: Annotated[int, typer.Option(min=16, help="side of the network input crops (px)")] = 64,
    scale_min: Annotated[float, typer.Option(help="smallest upscaling factor r sampled")] = 1.0,
    scale_max: Annotated[float, typer.Option(help="largest upscaling factor r sampled")] = 3.0,
    batch_size: Annotated[int, typer.Option(min=1)] = 2,
    lr: Annotated[float, typer.Option()] = 1e-4,
    checkpoint_every: Annotated[int, typer.Option(min=1)] = 500,
    seed: Annotated[int, typer.Option()] = 0,
    encoder_layer: Annotated[str, typer.Option(help="relu3_1 or relu4_1")] = "relu3_1",
    decoder_width: Annotated[float, typer.Option(help="decoder width multiplier alpha in (0, 1]")] = 1.0,
    colorization: Annotated[str, typer.Option(help="linear (learned) or wct (closed form)")] = "linear",
    vgg_weights: Annotated[Path | None, typer.Option(help="VGG-19 weights (.safetensors or torchvision .pth)")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N (default: auto)")] = None,
    precision: Annotated[str, typer.Option(help="auto, bf16 or fp32")] = "fp32",
) -> None:
    """Pre-train the stylizer centrally on image folders."""
    from fedvst.train_command import TrainSettings, run_training
    from stylizer import StylizerConfig

    if not 0 < scale_min <= scale_max:
        fail("need 0 < --scale-min <= --scale-max")
    try:
        config = StylizerConfig(encoder_layer=encoder_layer, decoder_width=decoder_width, colorization=colorization)
        losses = run_training(TrainSettings(
            content_dir=content, style_dir=style, steps=steps, out=out, init=init, base_size=base_size,
            scale_min=scale_min, scale_max=scale_max, batch_size=batch_size, lr=lr,
            checkpoint_every=checkpoint_every, seed=seed, config=config, vgg_weights=vgg_weights, device=device,
            precision=precision))
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    typer.echo(f"saved {out}: total {losses.total:.4f}, content {losses.content:.4f}, style {losses.style:.4f}")


def _stylizer(checkpoint: Path | None, vgg_weights: Path | None, device: str | None, precision: str):
    from stylizer import Stylizer

    return Stylizer.from_checkpoint(checkpoint, vgg_weights=vgg_weights, device=device, precision=precision)


def run_stylize(source: Path, style: Path, output: Path, options, checkpoint: Path | None = None,
                vgg_weights: Path | None = None, device: str | None = None, precision: str = "auto"):
    """Stylize a video or a photo with the local backend; returns the Summary."""
    from tqdm import tqdm

    from fedvst.backends import Dispatcher, LocalBackend
    from fedvst.pipeline import PHOTO_SUFFIXES, check_output_path, stylize_photo, stylize_video
    from fedvst.video.io import probe
    from stylizer.images import load_image

    check_output_path(output, [source, style])
    style_image = load_image(style, "style image")
    is_photo = source.suffix.lower() in PHOTO_SUFFIXES
    total = None if is_photo else (probe(source).frame_count or None)
    backend = LocalBackend(_stylizer(checkpoint, vgg_weights, device, precision))
    with Dispatcher([backend]) as dispatcher:
        if is_photo:
            return stylize_photo(source, style_image, output, dispatcher, options)
        with tqdm(total=total, unit="frame", desc="stylize", disable=None) as bar:
            return stylize_video(source, style_image, output, dispatcher, options, on_frame=bar.update)


def _options(height: int | None, scale: float | None, keyframes: str, interval: int, min_interval: int,
             max_interval: int, one_sided: bool):
    from fedvst.pipeline import PipelineOptions
    from fedvst.video.keyframes import KeyFramePolicy

    policy = KeyFramePolicy(mode=keyframes, interval=interval, min_interval=min_interval, max_interval=max_interval)
    return PipelineOptions(height=height, scale=scale, keyframes=policy, bidirectional=not one_sided)


@app.command()
def stylize(
    source: Annotated[Path, typer.Argument(metavar="INPUT", help="video (any FFmpeg format) or photo")],
    style: Annotated[Path, typer.Option(help="style image")],
    output: Annotated[Path, typer.Option("-o", "--output", help="output .mp4 (or .png/.jpg for a photo)")],
    height: Annotated[int | None, typer.Option(help="output height in px (width keeps the aspect)")] = None,
    scale: Annotated[float | None, typer.Option(help="output size as a factor r of the input")] = None,
    keyframes: Annotated[str, typer.Option(help="adaptive, interval or codec")] = "adaptive",
    interval: Annotated[int, typer.Option(min=1, help="key-frame interval K for --keyframes interval")] = 10,
    min_interval: Annotated[int, typer.Option(min=1)] = 2,
    max_interval: Annotated[int, typer.Option(min=1)] = 30,
    one_sided: Annotated[bool, typer.Option(help="paper's Algorithm 1 only (no two-sided blend)")] = False,
    checkpoint: Annotated[Path | None, typer.Option(help="stylizer checkpoint (default: built-in)")] = None,
    vgg_weights: Annotated[Path | None, typer.Option(help="VGG-19 weights the checkpoint needs")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N (default: auto)")] = None,
    precision: Annotated[str, typer.Option(help="auto, bf16 or fp32")] = "auto",
) -> None:
    """Stylize a video (key frames by the DNN, the rest by optical flow) or a single photo."""
    try:
        options = _options(height, scale, keyframes, interval, min_interval, max_interval, one_sided)
        summary = run_stylize(source, style, output, options, checkpoint, vgg_weights, device, precision)
    except (ValueError, OSError, KeyError) as exc:
        fail(str(exc).strip("'\""))
    typer.echo(summary.line())


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="folder for demo.mp4 and demo_strip.png")] = Path("fedvst-demo"),
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N (default: auto)")] = None,
) -> None:
    """Stylize the bundled sample clip with the bundled style and the built-in model."""
    from fedvst.demo import run_demo

    try:
        summary, strip = run_demo(out, device=device)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    typer.echo(summary.line())
    typer.echo(f"strip (original | stylized key frame | interpolated frame): {strip}")


def main() -> None:
    """Console-script entry point."""
    app(prog_name="fedvst")


if __name__ == "__main__":
    sys.exit(main())
