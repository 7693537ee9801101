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


def main() -> None:
    """Console-script entry point."""
    app(prog_name="fedvst")


if __name__ == "__main__":
    sys.exit(main())
