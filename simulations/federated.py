"""N edge servers and the cloud on Flower's simulation engine (seeds/000 §4.8, Figure 7).

    python -m simulations.federated --edges 1 2 4 --profile quick --out runs/quick

For each N, N edges each own a different slice of the sample media (non-IID: their own
clips and photos) and retrain between synchronisations; the cloud averages once all N have
replied. The production ServerApp body (``cloud_server.app.run_server``), ClientApp
(``edge_client.app``), strategy and training step run unchanged; the simulation only fills
in each edge's data folder. After every round the global model is scored on one fixed
held-out set of content/style pairs that no edge trains on.

Outputs in --out: ``curves.csv``, ``figure7.png``, ``summary.json`` (images per edge needed
to reach the target loss for each N), and per-N working folders.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation
from PIL import Image

from cloud_server.app import run_server, run_settings
from cloud_server.registry import start_registry
from cloud_server.server_optimizer import ServerOptimizer
from edge_client import app as edge_app
from edge_client.frame_store import FrameStore
from edge_client.model_slot import slot_path
from edge_client.server import EdgeSettings, ensure_model
from fedvst.samples import sample_photo, sample_video
from fedvst.video.io import read_frames
from stylizer import StylizerConfig, build_model, builtin_checkpoint_path, save_model
from stylizer.encoder_weights import seeded_weights
from stylizer.images import load_image

log = logging.getLogger(__name__)
CSV_COLUMNS = ["edges", "round", "images_per_edge", "total", "content", "style", "wall_seconds", "event"]

# Non-IID slices: each edge its own clip segment and its own photos (content) and styles.
SLICES = [
    {"clip": ("bikes.mp4", 0, 125), "photos": ["astronaut"], "styles": ["coffee", "retina"]},
    {"clip": ("carphone_pristine.mp4", 0, 120), "photos": ["chelsea"], "styles": ["rocket", "color"]},
    {"clip": ("bigbuckbunny.mp4", 0, 66), "photos": ["motorcycle_left"], "styles": ["hubble_deep_field"]},
    {"clip": ("bikes.mp4", 125, 250), "photos": ["coffee"], "styles": ["astronaut", "chelsea"]},
]
HELDOUT = {"clip": ("bigbuckbunny.mp4", 70, 132), "photos": [], "styles": ["motorcycle_right", "ihc"]}


@dataclass(frozen=True)
class Profile:
    """How big a run is."""

    rounds: int
    images_per_sync: int
    base_size: int
    eval_images: int
    frame_step: int
    decoder_width: float
    initial: str  # "fresh" (seeded init) or "builtin"
    head: str = "image"  # the decoder head of a fresh model; the committed Figure 7 was made with "image"


PROFILES = {
    "quick": Profile(rounds=24, images_per_sync=16, base_size=48, eval_images=32, frame_step=10, decoder_width=0.5,
                     initial="fresh"),
    "paper": Profile(rounds=10, images_per_sync=4000, base_size=128, eval_images=64, frame_step=2,
                     decoder_width=1.0, initial="fresh"),
    "tiny": Profile(rounds=2, images_per_sync=4, base_size=32, eval_images=2, frame_step=25, decoder_width=0.25,
                    initial="fresh"),
}


def _png(image) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def clip_frames(name: str, start: int, stop: int, step: int) -> list:
    """Frames start…stop-1 (every ``step``-th) of a sample clip."""
    return [f.image for f in read_frames(sample_video(name), step=step) if start <= f.index < stop]


def fill_edge(folder: Path, slices: list[dict], step: int) -> None:
    """An edge's frame store holding ``slices`` (what its phones would have sent)."""
    store = FrameStore(folder)
    try:
        for slice_ in slices:
            for frame in clip_frames(*slice_["clip"], step):
                store.add_frame(_png(frame))
            for photo in slice_["photos"]:
                store.add_frame(_png(load_image(sample_photo(photo))))
            for style in slice_["styles"]:
                store.add_style(_png(load_image(sample_photo(style))))
    finally:
        store.close()


def edge_slices(edge: int, iid: bool) -> list[dict]:
    """What edge ``edge`` holds: its own slice (non-IID, the default), or every slice (IID: the paper
    samples each edge's images from one shared training set), told apart by its own sampling seed."""
    return list(SLICES) if iid else [SLICES[edge % len(SLICES)]]


def write_heldout(folder: Path, step: int) -> Path:
    """The cloud's held-out set: content/ and style/ images no edge has."""
    for sub in ("content", "style"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(clip_frames(*HELDOUT["clip"], max(step, 10))):
        Image.fromarray(frame).save(folder / "content" / f"frame_{i:03d}.png")
    for photo in HELDOUT["photos"]:
        Image.fromarray(load_image(sample_photo(photo))).save(folder / "content" / f"{photo}.png")
    for style in HELDOUT["styles"]:
        Image.fromarray(load_image(sample_photo(style))).save(folder / "style" / f"{style}.png")
    return folder


def initial_checkpoint(out: Path, profile: Profile, seed: int) -> Path:
    """The model every N starts from (Algorithm 2, step 1)."""
    if profile.initial == "builtin":
        return builtin_checkpoint_path()
    torch.manual_seed(seed)
    model = build_model(StylizerConfig(decoder_width=profile.decoder_width, head=profile.head),
                        seeded_weights(0, announce=False))
    path = out / "initial.safetensors"
    save_model(path, model, source=f"fresh seeded init (seed {seed})")
    return path


EDGES_PER_SEED = 1000


def edge_seed(seed: int, partition: int) -> int:
    """Sampling seed of edge ``partition`` (< 1000) in a run with ``seed``: seed 0 gives edge i seed i."""
    if not 0 <= partition < EDGES_PER_SEED:
        raise ValueError(f"edge index must be in [0, {EDGES_PER_SEED}), got {partition}")
    return seed * EDGES_PER_SEED + partition


def make_client_app(data_root: Path, registry: str, crash_edge: int | None, crash_round: int | None,
                    events: Path, seed: int = 0) -> ClientApp:
    """The production ClientApp's handlers, with each edge's folder, its sampling seed (from ``seed``
    and its index) and an optional injected crash."""
    client = ClientApp()

    def prepare(msg: Message, context: Context) -> Path:
        partition = int(context.node_config["partition-id"])
        folder = data_root / f"edge_{partition}"
        context.node_config["data-dir"] = str(folder)
        context.node_config["train-threads"] = 1
        context.node_config["seed"] = edge_seed(seed, partition)
        config = msg.content["config"]
        round_number = int(config.get("global-round", config.get("server-round", 0)))
        marker = folder / "crashed"
        if marker.exists() and not slot_path(folder).exists():
            source = ensure_model(EdgeSettings(port=0, data_dir=folder, registry=registry), None)
            _event(events, round_number, f"edge {partition} restored ({source})")
        if partition == crash_edge and round_number == crash_round and not marker.exists():
            marker.write_text(str(round_number))
            for path in (slot_path(folder), slot_path(folder).with_suffix(".json")):
                path.unlink(missing_ok=True)  # the crash loses the edge's model
            _event(events, round_number, f"edge {partition} crashed")
            raise RuntimeError(f"edge {partition} crashed (injected in round {round_number})")
        return folder

    @client.train()
    def train(msg: Message, context: Context) -> Message:
        prepare(msg, context)
        return edge_app.train(msg, context)

    @client.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        prepare(msg, context)
        return edge_app.evaluate_global(msg, context)

    return client


def _event(path: Path, round_number: int, text: str) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps({"round": round_number, "event": text}) + "\n")


def make_server_app(settings: dict) -> ServerApp:
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        run_server(grid, run_settings({**dict(context.run_config), **settings}))

    return server


def start_ray(cpus: int, attempts: int = 3) -> None:
    """Start Ray for one simulation (Flower's engine reuses a running Ray), retrying a slow start.

    On two busy cores Ray's GCS now and then misses its start-up deadline. If that happens inside
    Flower, the engine logs the crash but its ServerApp waits for replies that never come.
    """
    import ray

    entries = [*sys.path, *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    pythonpath = os.pathsep.join(dict.fromkeys(filter(None, entries)))  # once each, however many runs
    os.environ["PYTHONPATH"] = pythonpath  # what Flower would pass its workers
    for attempt in range(1, attempts + 1):
        try:
            ray.init(num_cpus=cpus, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
            return
        except Exception as exc:  # Ray raises RuntimeError, TimeoutError or ConnectionError here
            stop_ray()
            if attempt == attempts:
                raise RuntimeError(f"Ray did not start in {attempts} tries: {exc}") from exc
            log.warning("Ray did not start (%s); trying again", exc)
            time.sleep(2.0 * attempt)


def stop_ray() -> None:
    """Shut this process's Ray down if it is running."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


def run_one(edges: int, out: Path, profile: Profile, initial: Path, heldout: Path, *,
            crash_edge: int | None = None, crash_round: int | None = None,
            server: dict | None = None, seed: int = 0, iid: bool = False) -> list[dict]:
    """Simulate ``edges`` edges; returns this N's CSV rows."""
    work = out / f"edges_{edges}"
    data_root = work / "edges"
    for i in range(edges):
        fill_edge(data_root / f"edge_{i}", edge_slices(i, iid), profile.frame_step)
    cloud = work / "cloud"
    settings = {"num-server-rounds": profile.rounds, "images-per-round": profile.images_per_sync,
                "base-size": profile.base_size, "min-nodes": edges, "data-dir": str(cloud),
                "initial-checkpoint": str(initial), "heldout-dir": str(heldout), "eval-images": profile.eval_images,
                "keep-last": 2, "wait-for-ready": False,  # stores are filled once: every edge trains every round
                **(server or {})}
    events = work / "events.jsonl"
    registry, port = start_registry(cloud / "checkpoints", "127.0.0.1:0")
    gpus = 1.0 / edges if torch.cuda.is_available() else 0.0
    cpus = max(1, min(edges, os.cpu_count() or 1))
    try:
        start_ray(cpus)
        run_simulation(server_app=make_server_app(settings),
                       client_app=make_client_app(data_root, f"127.0.0.1:{port}", crash_edge, crash_round, events,
                                                  seed),
                       num_supernodes=edges,
                       backend_config={"client_resources": {"num_cpus": 1, "num_gpus": gpus},
                                       "init_args": {"num_cpus": cpus, "include_dashboard": False}})
    finally:
        registry.stop(1)
        stop_ray()
    marks: dict[int, list[str]] = {}
    if events.exists():
        for line in events.read_text().splitlines():
            item = json.loads(line)
            marks.setdefault(int(item["round"]), []).append(item["event"])
    rows = []
    for line in (cloud / "history.jsonl").read_text().splitlines():
        entry = json.loads(line)
        metrics = entry["metrics"]
        if "heldout_total" not in metrics:
            continue
        rows.append({"edges": edges, "round": entry["round"],
                     "images_per_edge": entry["round"] * profile.images_per_sync,
                     "total": metrics["heldout_total"], "content": metrics["heldout_content"],
                     "style": metrics["heldout_style"], "wall_seconds": entry["wall_seconds"],
                     "event": "; ".join(marks.get(entry["round"], [])), "nodes": len(entry["nodes"])})
    return rows


def server_learning_rate(rule: str, edges: int) -> float:
    """η for ``edges`` edges: a fixed number, or 'sqrt' (√N) / 'linear' (N) scaling with the cohort."""
    if rule == "sqrt":
        return edges ** 0.5
    if rule == "linear":
        return float(edges)
    try:
        return float(rule)
    except ValueError:
        raise ValueError(f"--server-lr takes a number, 'sqrt' or 'linear', got {rule!r}") from None


def server_momentum(rule: str, edges: int) -> float:
    """β for ``edges`` edges: a fixed number, or 'scaled' (β = 1 − 1/N, so the step's long-run gain
    1/(1 − β) is N while directions the edges already settle in each round stay stable)."""
    if rule == "scaled":
        return 1.0 - 1.0 / edges
    try:
        return float(rule)
    except ValueError:
        raise ValueError(f"--server-momentum takes a number or 'scaled', got {rule!r}") from None


def smoothed_totals(rows: list[dict], edges: int, window: int, key: str = "total") -> list[tuple[int, float]]:
    """(images per edge, trailing mean of the held-out ``key`` loss over ``window`` rounds) for one N."""
    mine = sorted((r for r in rows if r["edges"] == edges), key=lambda r: r["round"])
    out = []
    for i, row in enumerate(mine):
        recent = [r[key] for r in mine[max(0, i - window + 1):i + 1]]
        out.append((row["images_per_edge"], sum(recent) / len(recent)))
    return out


def images_to_target(rows: list[dict], target: float, window: int = 3) -> dict[str, int | None]:
    """Per N, the fewest images per edge at which the smoothed held-out total loss is ≤ target."""
    result: dict[str, int | None] = {}
    for edges in sorted({r["edges"] for r in rows}):
        reached = [images for images, loss in smoothed_totals(rows, edges, window) if loss <= target]
        result[str(edges)] = min(reached) if reached else None
    return result


def default_target(rows: list[dict], window: int = 3) -> float:
    """The best (smoothed) loss the smallest federation reaches, as the paper's 0.0748 is where 1 edge
    gets to at the end of its run."""
    fewest = min(r["edges"] for r in rows)
    return float(min(loss for _, loss in smoothed_totals(rows, fewest, window)))


def plot(rows: list[dict], path: Path, window: int = 3, target: float | None = None) -> None:
    """Figure 7: held-out total, content and style loss against images per edge, one colour per N.

    Each round's value is a faint dot; the solid line is the ``window``-round trailing mean the
    images-to-target table is read from, and ``target`` a dashed line on the total panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, key in zip(axes, ("total", "content", "style"), strict=True):
        for colour, edges in enumerate(sorted({r["edges"] for r in rows})):
            mine = sorted((r for r in rows if r["edges"] == edges), key=lambda r: r["round"])
            ax.plot([r["images_per_edge"] for r in mine], [r[key] for r in mine], "o", markersize=2.5, alpha=0.35,
                    color=f"C{colour}")
            images, trailing = zip(*smoothed_totals(rows, edges, window, key), strict=True)
            ax.plot(images, trailing, color=f"C{colour}", label=f"{edges} edge{'s' if edges > 1 else ''}")
        if key == "total" and target is not None:
            ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:.3f}")
        ax.set_title(f"{key} loss (held-out, {window}-round mean)")
        ax.set_xlabel("images trained per edge")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    parser.add_argument("--out", type=Path, default=Path("runs/federated"))
    parser.add_argument("--rounds", type=int, help="override the profile's number of rounds")
    parser.add_argument("--images-per-sync", type=int, help="override the profile's images per edge per round")
    parser.add_argument("--head", choices=("image", "affine"), default=None,
                        help="decoder head of the fresh initial model (default: the profile's, image)")
    parser.add_argument("--crash-edge", type=int, help="edge index to kill")
    parser.add_argument("--at-round", type=int, help="round in which it dies")
    parser.add_argument("--target-loss", type=float,
                        help="default: the best (smoothed) loss of the fewest-edges run")
    parser.add_argument("--smoothing", type=int, default=3, help="rounds in the trailing mean of the loss")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the initial model and of the edges' sampling (with each edge's index "
                             "and the round)")
    parser.add_argument("--iid", action="store_true",
                        help="every edge holds all the sample media (the paper's shared training set) instead of "
                             "a slice of its own")
    parser.add_argument("--server-lr", default="1",
                        help="the cloud's learning rate η on the averaged update: a number, 'sqrt' (η = √N) "
                             "or 'linear' (η = N); 1 is plain FedAvg")
    parser.add_argument("--server-momentum", default="0",
                        help="FedAvgM momentum β: a number (0: none) or 'scaled' (β = 1 − 1/N)")
    parser.add_argument("--server-warmup", type=int, default=0,
                        help="rounds over which η ramps up from 1 and β from 0 (0: from the first round)")
    args = parser.parse_args(argv)
    if (args.crash_edge is None) != (args.at_round is None):
        parser.error("--crash-edge and --at-round go together")
    if min(args.edges) < 1 or len(set(args.edges)) != len(args.edges):
        parser.error(f"--edges takes distinct counts of at least 1, got {' '.join(map(str, args.edges))}")
    if args.crash_edge is not None and not 0 <= args.crash_edge < max(args.edges):
        parser.error(f"--crash-edge is an edge index, 0 to {max(args.edges) - 1} here, got {args.crash_edge}")
    if args.smoothing < 1:
        parser.error(f"--smoothing must be at least 1, got {args.smoothing}")
    try:
        for edges in args.edges:
            ServerOptimizer(server_learning_rate(args.server_lr, edges), server_momentum(args.server_momentum, edges),
                            warmup_rounds=args.server_warmup)
    except ValueError as exc:
        parser.error(str(exc))
    profile = PROFILES[args.profile]
    for name in ("rounds", "images_per_sync"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if value is not None:
            profile = Profile(**{**profile.__dict__, name: value})
    if args.head is not None:
        profile = Profile(**{**profile.__dict__, "head": args.head})
    if args.at_round is not None and not 1 <= args.at_round <= profile.rounds:
        parser.error(f"--at-round must be within 1…{profile.rounds} (the run's rounds), got {args.at_round}")
    args.out.mkdir(parents=True, exist_ok=True)
    if any(args.out.glob("edges_*")):
        parser.error(f"{args.out} holds an earlier run; choose an empty --out")
    os.environ.setdefault("FEDVST_OFFLINE", "1")
    started = time.monotonic()
    initial = initial_checkpoint(args.out, profile, args.seed)
    heldout = write_heldout(args.out / "heldout", profile.frame_step)
    rows: list[dict] = []
    for edges in args.edges:
        crash = args.crash_edge if args.crash_edge is not None and args.crash_edge < edges else None
        server = {"server-learning-rate": server_learning_rate(args.server_lr, edges),
                  "server-momentum": server_momentum(args.server_momentum, edges),
                  "server-warmup-rounds": args.server_warmup}
        rows += run_one(edges, args.out, profile, initial, heldout, crash_edge=crash,
                        crash_round=args.at_round if crash is not None else None, server=server, seed=args.seed,
                        iid=args.iid)
    with (args.out / "curves.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    target = args.target_loss if args.target_loss is not None else default_target(rows, args.smoothing)
    plot(rows, args.out / "figure7.png", args.smoothing, target)
    summary = {"target_loss": round(target, 6),
               "images_to_target": images_to_target(rows, target, args.smoothing),
               "smoothing_rounds": args.smoothing,
               "profile": args.profile, "head": profile.head, "images_per_sync": profile.images_per_sync,
               "seed": args.seed,
               "data": "iid" if args.iid else "non-iid",
               "server_lr": args.server_lr, "server_momentum": args.server_momentum,
               "server_warmup": args.server_warmup,
               "wall_seconds": round(time.monotonic() - started, 1)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"target held-out total loss {target:.4f}: images per edge needed")
    for edges, images in summary["images_to_target"].items():
        print(f"  {edges} edge(s): {images if images is not None else 'not reached'}")
    return summary


if __name__ == "__main__":
    main()
