"""N edge servers and the cloud on Flower's simulation engine (seeds/000 §4.8, Figure 7).

    fedvst simulate --edges 1 2 4 --profile quick --seeds 0 1 2 --out runs/quick

(``python -m simulations.federated`` takes the same options.) For each seed and N, N edges each
own a different slice of the sample media (non-IID: their own clips and photos) and retrain
between synchronisations; the cloud averages their replies. With ``--sample K`` Flower samples K
of the N edges for each round. The production ServerApp body (``cloud_server.app.run_server``),
ClientApp (``edge_client.app``), strategy and training step run unchanged; the simulation only
fills in each edge's data folder, where its state (frames, styles, model, Adam moments) lives
between the rounds it is sampled for. After every round the global model is scored on one fixed
held-out set of content/style pairs that no edge trains on.

Outputs in --out: ``curves.csv`` (one row per seed, N and round), ``figure7.png`` (mean over
seeds with a min–max band), ``summary.json`` (images per edge to reach the target loss, final
loss, seconds per round and peak memory, per N), and per-seed, per-N working folders.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
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
from fedvst.processes import descendants, raise_interrupt
from fedvst.protocol.security import check_address
from fedvst.samples import sample_photo, sample_video, write_heldout
from fedvst.video.io import read_frames
from simulations import figure7
from simulations.watch import PeakMemory, RoundProgress
from stylizer import StylizerConfig, build_model, builtin_checkpoint_path, load_checkpoint, save_model
from stylizer.encoder_weights import resolve_weights
from stylizer.images import load_image
from stylizer.render import resize_frame

log = logging.getLogger(__name__)
CSV_COLUMNS = ["seed", "edges", "round", "images_per_edge", "total", "content", "style", "wall_seconds", "event"]

# Non-IID slices of the training split (``fedvst.samples``): each edge its own clip segment, its
# own photos (content) and its own styles. The cloud's held-out set is the held-out split.
SLICES = [
    {"clip": ("bikes.mp4", 0, 30), "photos": ["astronaut", "camera"], "styles": ["coffee", "ihc"]},
    {"clip": ("bigbuckbunny.mp4", 0, 66), "photos": ["motorcycle_left", "coins"], "styles": ["rocket"]},
    {"clip": ("bikes.mp4", 76, 137), "photos": ["hubble_deep_field", "brick"], "styles": ["astronaut"]},
    {"clip": ("bigbuckbunny.mp4", 66, 132), "photos": ["coffee", "grass"], "styles": ["motorcycle_right"]},
]


@dataclass(frozen=True)
class Profile:
    """How big a run is."""

    rounds: int
    images_per_sync: int
    base_size: int
    eval_images: int  # each edge's own check of the new model (extra metrics)
    frame_step: int
    decoder_width: float
    initial: str  # "fresh" (seeded init) or "builtin"
    head: str = "affine"  # the decoder head of a fresh model
    edges: tuple[int, ...] = (1, 2, 4)  # N of the runs, unless --edges says otherwise
    sample: int = 0  # K edges Flower samples for each round (capped at N); 0: all N
    image_side: int = 0  # longest side (px) the edges store their images at; 0: as recorded
    heldout_images: int = 16  # the cloud's held-out pairs: the curves


PROFILES = {
    # 2 cores: 24 syncs of 64 images (1536 images per edge) for N = 1, 2, 4 and 3 seeds in under 45 minutes.
    # The paper's stylizer (the image head): a fresh affine head already outputs the closed-form colour
    # transfer, and on held-out pictures its training does not move Eq. 5 (docs/benchmarks.md), so its
    # curves cannot show how fast N edges learn; --head affine runs it anyway.
    "quick": Profile(rounds=24, images_per_sync=64, base_size=32, eval_images=4, frame_step=10, decoder_width=0.5,
                     initial="fresh", head="image", heldout_images=32),
    "wide": Profile(rounds=4, images_per_sync=8, base_size=32, eval_images=8, frame_step=25, decoder_width=0.25,
                    initial="fresh", edges=(1, 4, 16, 100), sample=4, image_side=160, heldout_images=8),
    # a GPU machine: the paper's sync every 4000 images, 40 000 images per edge
    "paper": Profile(rounds=10, images_per_sync=4000, base_size=128, eval_images=16, frame_step=2,
                     decoder_width=1.0, initial="fresh", heldout_images=64),
    "tiny": Profile(rounds=2, images_per_sync=4, base_size=32, eval_images=2, frame_step=25, decoder_width=0.25,
                    initial="fresh", edges=(2,), heldout_images=2),
}


def _png(image) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


CORPUS_IMAGE_SIDE = 256  # corpus pictures are stored at most this long on simulated edges (they train at 32–128 px)


def media_path(name: str, kind: str) -> Path:
    """A slice's clip or photo: a path (the corpus') as it is, else a sample's name (``kind``: video
    or photo)."""
    if Path(name).is_absolute():
        return Path(name)
    return sample_video(name) if kind == "video" else sample_photo(name)


@functools.lru_cache(maxsize=16)
def clip_frames(name: str, start: int, stop: int, step: int) -> tuple:
    """Frames start…stop-1 (every ``step``-th) of a clip (decoded once per process)."""
    frames = read_frames(media_path(name, "video"), step=step, limit=(stop + step - 1) // step)
    return tuple(f.image for f in frames if start <= f.index < stop)


def fit_side(image, side: int):
    """``image`` shrunk so that its longest side is at most ``side`` px (0: unchanged)."""
    height, width = image.shape[:2]
    if not side or max(height, width) <= side:
        return image
    factor = side / max(height, width)
    return resize_frame(image, (max(1, round(height * factor)), max(1, round(width * factor))))


@functools.lru_cache(maxsize=16)
def slice_pngs(slice_key: str, step: int, side: int) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """(frames, styles) of one slice as the PNG bytes phones would have sent, encoded once per process."""
    slice_ = json.loads(slice_key)
    frames = [fit_side(f, side) for f in clip_frames(*slice_["clip"], step)]
    frames += [fit_side(load_image(media_path(photo, "photo")), side) for photo in slice_["photos"]]
    styles = [fit_side(load_image(media_path(style, "photo")), side) for style in slice_["styles"]]
    return tuple(map(_png, frames)), tuple(map(_png, styles))


def fill_edge(folder: Path, slices: list[dict], step: int, side: int = 0) -> None:
    """An edge's frame store holding ``slices`` (what its phones would have sent), images at most
    ``side`` px on their longest side (0: as recorded)."""
    store = FrameStore(folder)
    try:
        for slice_ in slices:
            frames, styles = slice_pngs(json.dumps(slice_, sort_keys=True), step, side)
            for frame in frames:
                store.add_frame(frame)
            for style in styles:
                store.add_style(style)
    finally:
        store.close()


def edge_slices(edge: int, iid: bool, slices: list[dict] | None = None) -> list[dict]:
    """What edge ``edge`` holds: its own slice (non-IID, the default), or every slice (IID: the paper
    samples each edge's images from one shared training set), told apart by its own sampling seed.
    ``slices``: SLICES of the sample media, unless given (``corpus_media.corpus_slices``)."""
    slices = SLICES if slices is None else slices
    return list(slices) if iid else [slices[edge % len(slices)]]


def initial_checkpoint(out: Path, profile: Profile, seed: int) -> Path:
    """The model every N of one seed starts from (Algorithm 2, step 1), written in ``out``."""
    if profile.initial == "builtin":
        return builtin_checkpoint_path()
    out.mkdir(parents=True, exist_ok=True)
    return fresh_checkpoint(out / "initial.safetensors", profile.head, profile.decoder_width, seed)


def fresh_checkpoint(path: Path, head: str, decoder_width: float, seed: int, glow_weight: float = 0.0,
                     neutral_residual: str = "local") -> Path:
    """A freshly initialised stylizer (``head``, ``decoder_width``, the glow term's ``glow_weight`` that
    every trainer of it then pays, what its residual may do to greys: ``neutral_residual``; torch seeded
    with ``seed``) against the default encoder, saved at ``path``."""
    torch.manual_seed(seed)
    model = build_model(StylizerConfig(decoder_width=decoder_width, head=head, glow_weight=glow_weight,
                                       neutral_residual=neutral_residual), resolve_weights(allow_download=False))
    save_model(path, model, source=f"fresh init (seed {seed})")
    return path


def untrained_builtin_checkpoint(path: Path, seed: int) -> Path:
    """The built-in model's architecture, loss and encoder (its ``config``) with freshly initialised
    learned tensors (torch seeded with ``seed``), saved at ``path``: where the built-in's own training
    started, so a federation from it has what the built-in learned still to learn."""
    builtin = load_checkpoint(builtin_checkpoint_path())
    torch.manual_seed(seed)
    model = build_model(StylizerConfig.from_dict(builtin.metadata["config"]), resolve_weights(allow_download=False))
    if model.encoder.identity != builtin.metadata["encoder"]["identity"]:
        raise ValueError(f"the default encoder ({model.encoder.identity}) is not the built-in's "
                         f"({builtin.metadata['encoder']['identity']})")
    save_model(path, model, source=f"the built-in's architecture, untrained (seed {seed})")
    return path


EDGES_PER_SEED = 1000


def edge_seed(seed: int, partition: int) -> int:
    """Sampling seed of edge ``partition`` (< 1000) in a run with ``seed``: seed 0 gives edge i seed i."""
    if not 0 <= partition < EDGES_PER_SEED:
        raise ValueError(f"edge index must be in [0, {EDGES_PER_SEED}), got {partition}")
    return seed * EDGES_PER_SEED + partition


def make_client_app(data_root: Path, registry: str, crash_edge: int | None, crash_round: int | None,
                    events: Path, seed: int = 0, threads: int = 1) -> ClientApp:
    """The production ClientApp's handlers, with each edge's folder, its sampling seed (from ``seed``
    and its index), ``threads`` for its training and an optional injected crash."""
    client = ClientApp()

    def prepare(msg: Message, context: Context) -> Path:
        partition = int(context.node_config["partition-id"])
        folder = data_root / f"edge_{partition}"
        context.node_config["data-dir"] = str(folder)
        context.node_config["train-threads"] = threads  # the cores this edge has to itself
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


RAY_CONNECT_S = 10.0  # per check of a --ray-address; the whole refusal stays well under 30 s


def check_ray_address(address: str, timeout_s: float | None = None) -> None:
    """RuntimeError (one line, naming ``address``) unless a Ray head's GCS answers at HOST:PORT within
    ``timeout_s`` (default RAY_CONNECT_S) for each of the TCP connection, the gRPC handshake and Ray's
    own ``NodeInfoGcsService.GetClusterId`` (any other gRPC server fails that). ``ray.init`` itself
    retries an address that is not a Ray head for minutes, deaf to SIGTERM."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    timeout_s = RAY_CONNECT_S if timeout_s is None else timeout_s
    try:
        check_address(address)
    except ValueError as exc:
        raise ValueError(f"--ray-address takes the head's HOST:PORT (its GCS port, 6379 by default): {exc}") from None
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RuntimeError(f"cannot reach the Ray head at {address}: {exc.strerror or exc}") from None
    channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout_s)
        gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(gcs_service_pb2.GetClusterIdRequest(),
                                                                          timeout=timeout_s)
    except grpc.FutureTimeoutError:
        raise RuntimeError(f"{address} accepts connections but is not a Ray head (no gRPC answer in "
                           f"{timeout_s:.0f} s)") from None
    except grpc.RpcError as exc:
        raise RuntimeError(f"{address} answers gRPC but is not a Ray head (Ray's GCS service said "
                           f"{exc.code().name}): pass the head's GCS port, 6379 by default") from None
    finally:
        channel.close()


def start_ray(cpus: int, attempts: int = 3, address: str | None = None) -> None:
    """Start Ray for one simulation, or join the cluster whose head is at ``address`` (Flower's
    engine uses whichever Ray this process is connected to), retrying a slow start.

    On two busy cores Ray's GCS now and then misses its start-up deadline. If that happens inside
    Flower, the engine logs the crash but its ServerApp waits for replies that never come.
    """
    import ray

    entries = [*sys.path, *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    pythonpath = os.pathsep.join(dict.fromkeys(filter(None, entries)))  # once each, however many runs
    os.environ["PYTHONPATH"] = pythonpath  # what Flower would pass its workers
    runtime_env = {"env_vars": {"PYTHONPATH": pythonpath}}
    for attempt in range(1, attempts + 1):
        before = set(descendants(os.getpid()))
        try:
            with signals_seen() as seen:
                if address is None:
                    ray.init(num_cpus=cpus, include_dashboard=False, runtime_env=runtime_env)
                else:
                    check_ray_address(address)
                    ray.init(address=address, runtime_env=runtime_env)
            if threading.current_thread() is threading.main_thread():  # ray.init put its own (sys.exit) in
                signal.signal(signal.SIGTERM, raise_interrupt)
            if signal.SIGTERM in seen:  # Ray's handler ran, but its SystemExit was swallowed (in a fork hook)
                raise KeyboardInterrupt(f"stopped by signal {signal.SIGTERM.value}")
            return
        except Exception as exc:  # Ray raises RuntimeError, TimeoutError or ConnectionError here
            stop_ray()
            for pid in set(descendants(os.getpid())) - before:  # a timed-out start leaves its GCS running
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if attempt == attempts or address is not None:
                where = f"at {address}" if address is not None else f"in {attempts} tries"
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise RuntimeError(f"Ray did not start {where}: {first}") from exc
            log.warning("Ray did not start (%s); trying again", exc)
            time.sleep(2.0 * attempt)


@contextlib.contextmanager
def signals_seen() -> Iterator[set[int]]:
    """The signals delivered to this process while the block runs, whatever their handlers did with
    them (``signal.set_wakeup_fd``; main thread only, else always empty). Ray's SIGTERM handler
    exits by raising SystemExit, which Python drops when the signal lands in a fork hook of
    ``ray.init``: this is how a caller still learns that it was asked to stop."""
    seen: set[int] = set()
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    try:
        yield seen
    finally:
        signal.set_wakeup_fd(previous)
        with contextlib.suppress(BlockingIOError):
            seen.update(reader.recv(4096))
        reader.close()
        writer.close()


def stop_ray() -> None:
    """Shut this process's Ray down if it is running."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


def images_per_edge(round_number: int, images_per_sync: int, sampled: int, edges: int) -> float | int:
    """Images each edge has trained on after ``round_number`` rounds, on average: with K of N edges
    sampled per round, an edge trains in K/N of them (a whole number when every edge trains)."""
    images = round_number * images_per_sync * sampled / edges
    return int(images) if images.is_integer() else round(images, 3)


@dataclass
class RunResult:
    """One (seed, N) run: its CSV rows and what it cost."""

    rows: list[dict]
    seconds_per_round: float
    peak_rss_mb: float
    sampled: int  # edges trained in each round
    training_seconds_per_round: float = 0.0  # of that, the training steps alone (training_wall_seconds)


def run_one(edges: int, out: Path, profile: Profile, initial: Path, heldout: Path, *,
            crash_edge: int | None = None, crash_round: int | None = None,
            server: dict | None = None, seed: int = 0, iid: bool = True, sample: int = 0,
            ray_address: str | None = None, progress: RoundProgress | None = None,
            slices: list[dict] | None = None) -> RunResult:
    """Simulate ``edges`` edges (``sample`` of them trained each round; 0: all) for one seed, with
    its working folder in ``out``/edges_N; ``slices``: the edges' media (SLICES unless given)."""
    work = out / f"edges_{edges}"
    data_root = work / "edges"
    side = profile.image_side or (CORPUS_IMAGE_SIDE if slices is not None else 0)
    for i in range(edges):
        fill_edge(data_root / f"edge_{i}", edge_slices(i, iid, slices), profile.frame_step, side)
    cloud = work / "cloud"
    sampled = sample if 0 < sample < edges else 0
    settings = {"num-server-rounds": profile.rounds, "images-per-round": profile.images_per_sync,
                "base-size": profile.base_size, "min-nodes": edges, "data-dir": str(cloud),
                "initial-checkpoint": str(initial), "heldout-dir": str(heldout), "eval-images": profile.eval_images,
                "heldout-images": profile.heldout_images,
                "keep-last": 2, "wait-for-ready": False,  # stores are filled once: every edge trains every round
                "sample-nodes": sampled, **(server or {})}
    events = work / "events.jsonl"
    registry, port = start_registry(cloud / "checkpoints", "127.0.0.1:0")
    actors = sampled or edges
    gpus = 1.0 / actors if torch.cuda.is_available() else 0.0
    cpus = max(1, min(actors, os.cpu_count() or 1))
    progress = progress or RoundProgress(profile.rounds, enabled=False)
    try:
        with PeakMemory() as memory, progress.run(edges, seed, profile.rounds, cloud / "history.jsonl"):
            start_ray(cpus, address=ray_address)
            run_simulation(server_app=make_server_app(settings),
                           client_app=make_client_app(data_root, f"127.0.0.1:{port}", crash_edge, crash_round,
                                                      events, seed, threads=max(1, cpus // actors)),
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
    training: list[float] = []  # per counted round: seconds its training steps took on this machine
    for line in (cloud / "history.jsonl").read_text().splitlines():
        entry = json.loads(line)
        metrics = entry["metrics"]
        if entry["round"] > 0 and entry.get("train_seconds"):
            training.append(training_wall_seconds(list(entry["train_seconds"].values()), cpus))
        if "heldout_total" not in metrics:
            continue
        rows.append({"seed": seed, "edges": edges, "round": entry["round"],
                     "images_per_edge": images_per_edge(entry["round"], profile.images_per_sync, sampled or edges,
                                                        edges),
                     "total": metrics["heldout_total"], "content": metrics["heldout_content"],
                     "style": metrics["heldout_style"], "wall_seconds": entry["wall_seconds"],
                     "event": "; ".join(marks.get(entry["round"], [])), "nodes": len(entry["nodes"])})
    trained = [r for r in rows if r["round"] > 0]
    seconds = (trained[-1]["wall_seconds"] - rows[0]["wall_seconds"]) / len(trained) if trained else 0.0
    training_seconds = sum(training) / len(training) if training else 0.0
    return RunResult(rows, round(seconds, 2), memory.peak_mb, sampled or edges, round(training_seconds, 2))


def training_wall_seconds(seconds: list[float], cpus: int) -> float:
    """Wall seconds a round's training steps take when its edges' steps (``seconds``, one per edge)
    run ``cpus`` at a time, as the simulation runs them: the longest of a greedy split into ``cpus``
    lanes (for equal edges, their sum over ``min(edges, cpus)``)."""
    lanes = [0.0] * max(1, min(cpus, len(seconds)))
    for value in sorted(seconds, reverse=True):
        lanes[lanes.index(min(lanes))] += value
    return max(lanes)


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


@dataclass
class Request:
    """What ``fedvst simulate`` was asked to do (None: the profile's value)."""

    out: Path
    profile: str = "quick"
    edges: list[int] | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    sample: float | None = None  # K edges a round, or a fraction of N in (0, 1)
    rounds: int | None = None
    images_per_sync: int | None = None
    head: str | None = None
    crash_edge: int | None = None
    at_round: int | None = None
    target_loss: float | None = None
    smoothing: int = 3
    iid: bool = True  # the paper's setting: every edge samples from one shared training set
    media: str = "samples"  # or "corpus": the photo corpus' training split on the edges, its held-out split scored
    server_lr: str = "1"
    server_momentum: str = "0"
    server_warmup: int = 0
    ray_address: str | None = None
    progress: bool = True


@dataclass(frozen=True)
class Plan:
    """A checked request: the profile with every override applied, and K for each N."""

    request: Request
    profile: Profile
    edges: tuple[int, ...]
    sample: dict[int, int]  # N → K edges trained per round (K = N: all)


def sampled_edges(sample: float | None, edges: int, profile_sample: int) -> int:
    """K for ``edges`` edges: ``sample`` as a count (capped at N) or a fraction of N, else the profile's."""
    if sample is None:
        return min(profile_sample, edges) if profile_sample else edges
    if sample < 1:
        return max(1, round(sample * edges))
    return min(int(sample), edges)


def check(request: Request) -> Plan:
    """The request as a Plan, or ValueError (one line) for anything the run could not honour, before any work."""
    if request.media not in ("samples", "corpus"):
        raise ValueError(f"--media must be samples or corpus, got {request.media!r}")
    if request.media == "corpus":
        from fedvst.corpus import CorpusMissingError, load_manifest

        try:
            load_manifest()
        except CorpusMissingError as error:
            raise ValueError(str(error)) from None
    if request.profile not in PROFILES:
        raise ValueError(f"--profile must be one of {', '.join(sorted(PROFILES))}, got {request.profile!r}")
    profile = PROFILES[request.profile]
    edges = tuple(request.edges) if request.edges else profile.edges
    if min(edges) < 1 or len(set(edges)) != len(edges):
        raise ValueError(f"--edges takes distinct counts of at least 1, got {' '.join(map(str, edges))}")
    if max(edges) > EDGES_PER_SEED:
        raise ValueError(f"--edges goes up to {EDGES_PER_SEED}, got {max(edges)}")
    repeated = sorted({s for s in request.seeds if request.seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"--seeds lists {', '.join(map(str, repeated))} more than once; each seed is one run per N")
    if not request.seeds or min(request.seeds) < 0:
        raise ValueError(f"--seeds takes whole numbers ≥ 0, got {' '.join(map(str, request.seeds)) or 'none'}")
    if request.sample is not None:
        k = request.sample
        if not (0 < k < 1 or (k >= 1 and float(k).is_integer())):
            raise ValueError(f"--sample takes a number of edges K ≥ 1 or a fraction in (0, 1), got {k:g}")
        if k > max(edges):
            raise ValueError(f"--sample {k:g} is more than the {max(edges)} edges there are to sample from "
                             f"(--edges {' '.join(map(str, edges))})")
    if (request.crash_edge is None) != (request.at_round is None):
        raise ValueError("--crash-edge and --at-round go together")
    if request.crash_edge is not None and not 0 <= request.crash_edge < max(edges):
        raise ValueError(f"--crash-edge is an edge index, 0 to {max(edges) - 1} here, got {request.crash_edge}")
    if request.smoothing < 1:
        raise ValueError(f"--smoothing must be at least 1, got {request.smoothing}")
    for name in ("rounds", "images_per_sync"):
        value = getattr(request, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if value is not None:
            profile = replace(profile, **{name: value})
    if request.head is not None:
        if request.head not in ("image", "affine"):
            raise ValueError(f"--head must be image or affine, got {request.head!r}")
        profile = replace(profile, head=request.head)
    if request.at_round is not None and not 1 <= request.at_round <= profile.rounds:
        raise ValueError(f"--at-round must be within 1…{profile.rounds} (the run's rounds), got {request.at_round}")
    for n in edges:
        ServerOptimizer(server_learning_rate(request.server_lr, n), server_momentum(request.server_momentum, n),
                        warmup_rounds=request.server_warmup)
    if request.out.exists() and not request.out.is_dir():
        raise ValueError(f"--out {request.out} is a file; name a folder")
    if request.out.is_dir() and any(request.out.glob("seed_*")):
        raise ValueError(f"{request.out} holds an earlier run; choose an empty --out")
    if request.ray_address is not None:
        check_ray_address(request.ray_address)  # RuntimeError naming it, in seconds rather than minutes
    sample = {n: sampled_edges(request.sample, n, profile.sample) for n in edges}
    return Plan(request, profile, edges, sample)


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def simulate(plan: Plan) -> dict:
    """Run every (seed, N) of ``plan``; write curves.csv, figure7.png and summary.json; return the summary.
    SIGTERM stops it as Ctrl-C does (KeyboardInterrupt), through the same clean-up (Ray stopped)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, raise_interrupt)
    request, profile = plan.request, plan.profile
    out = request.out
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("FEDVST_OFFLINE", "1")
    started = time.monotonic()
    if request.media == "corpus":
        from simulations.corpus_media import corpus_slices, write_corpus_heldout

        heldout, slices = write_corpus_heldout(out / "heldout"), corpus_slices()
    else:
        heldout, slices = write_heldout(out / "heldout"), None
    rows: list[dict] = []
    costs: dict[str, list[RunResult]] = {}
    runs = [(seed, n) for seed in request.seeds for n in plan.edges]
    with RoundProgress(profile.rounds * len(runs), enabled=request.progress) as progress:
        for seed in request.seeds:
            initial = initial_checkpoint(out / f"seed_{seed}", profile, seed)
            for edges in plan.edges:
                crash = request.crash_edge if request.crash_edge is not None and request.crash_edge < edges else None
                server = {"server-learning-rate": server_learning_rate(request.server_lr, edges),
                          "server-momentum": server_momentum(request.server_momentum, edges),
                          "server-warmup-rounds": request.server_warmup}
                result = run_one(edges, out / f"seed_{seed}", profile, initial, heldout, crash_edge=crash,
                                 crash_round=request.at_round if crash is not None else None, server=server,
                                 seed=seed, iid=request.iid, sample=plan.sample[edges],
                                 ray_address=request.ray_address, progress=progress, slices=slices)
                rows += result.rows
                costs.setdefault(str(edges), []).append(result)
                write_csv(rows, out / "curves.csv")  # what is done so far survives a later failure
    settings = {"initial_loss": figure7.spread([r["total"] for r in rows if r["round"] == 0]),
                "encoder": encoder_identity(out, request.seeds),
                "cost": {n: {"sampled": results[0].sampled,
                             "seconds_per_round": figure7.spread([r.seconds_per_round for r in results]),
                             "training_seconds_per_round": figure7.spread([r.training_seconds_per_round
                                                                           for r in results]),
                             "peak_rss_mb": figure7.spread([r.peak_rss_mb for r in results])}
                         for n, results in costs.items()},
                "smoothing_rounds": request.smoothing, "seeds": request.seeds,
                "profile": request.profile, "head": profile.head, "images_per_sync": profile.images_per_sync,
                "rounds": profile.rounds, "data": "iid" if request.iid else "non-iid", "media": request.media,
                "server_lr": request.server_lr, "server_momentum": request.server_momentum,
                "server_warmup": request.server_warmup, "ray_address": request.ray_address,
                "wall_seconds": round(time.monotonic() - started, 1)}
    summary = figure7.resummarise(rows, settings, request.smoothing, request.target_loss)  # target, images to it
    figure7.plot(rows, out / "figure7.png", request.smoothing, summary["target_loss"])
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def encoder_identity(out: Path, seeds: list[int]) -> str:
    """The encoder every run of this simulation scored and trained with (from round 0's checkpoint)."""
    for seed in seeds:
        for meta in sorted((out / f"seed_{seed}").glob("edges_*/cloud/checkpoints/round_*.json")):
            try:
                return str(json.loads(meta.read_text())["encoder"]["identity"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return ""


def summary_lines(summary: dict) -> list[str]:
    """What a person reads at the end of a run: images to the target and the final loss per N."""
    seeds = len(summary["seeds"])
    lines = [f"target held-out total loss {summary['target_loss']:.4f} ({seeds} seed{'s' if seeds > 1 else ''}; "
             "mean [min–max]):"]
    for n, reached in summary["images_to_target"].items():
        final = summary["final_loss"][n]
        cost = summary["cost"][n]
        if reached["mean"] is None:
            images = "not reached"
        else:
            images = f"{reached['mean']:g} [{reached['min']:g}–{reached['max']:g}] images per edge"
            if reached["reached"] < reached["runs"]:
                images += f" ({reached['reached']} of {reached['runs']} seeds reached it)"
        lines.append(f"  {n} edge(s), {cost['sampled']} a round: {images}; final loss {final['mean']:.4f} "
                     f"[{final['min']:.4f}–{final['max']:.4f}]; {cost['seconds_per_round']['mean']:.1f} s a round "
                     f"({cost['training_seconds_per_round']['mean']:.1f} s of it training), "
                     f"peak {cost['peak_rss_mb']['max']:.0f} MB")
    return lines


def main(argv: list[str] | None = None) -> int:
    """``python -m simulations.federated ARGS``: runs ``fedvst simulate ARGS`` (in a child process: the
    CLI is the top layer, and nothing below it imports it); returns its exit status."""
    args = sys.argv[1:] if argv is None else argv
    return subprocess.call([sys.executable, "-m", "fedvst.cli", "simulate", *args])


if __name__ == "__main__":
    sys.exit(main())
