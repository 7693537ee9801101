"""Edge server throughput and latency under 1, 4 and 8 concurrent phones.

    python -m simulations.bench_edge --json

Starts a real edge (``fedvst edge serve``, built-in model) on 127.0.0.1 with a bounded
capacity, then each phone client streams 512×256 key frames (PNG, real footage) for a
fixed number of requests. Requests beyond capacity are refused with RESOURCE_EXHAUSTED
(counted as ``rejected``), not queued. Also measures p99 latency while a training loop runs
beside the service, with and without the ClientApp's back-off (lower CPU priority, and no
new step while requests are in flight), the edge's peak resident memory, and the mean reply
size per 1920×1080 key frame as a colour field and as a PNG image. ``phones`` runs whole
``fedvst stylize`` processes of a short clip through one fresh edge of the default capacity at
once (8 and 32 of them): videos completed and failed, p50/p99 of a video's wall time, and the
edge's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from fedvst.backends import KeyFrameJob
from fedvst.processes import free_port, start_cli, stop_process_group, wait_for_port
from fedvst.remote import RemoteBackend
from fedvst.samples import DEMO_STYLE, sample_photo, sample_video
from fedvst.video.io import read_frames
from simulations.arguments import whole
from stylizer import builtin_checkpoint_path, load_image

SIZE = (256, 512)
TRAINER = """
import sys, time, torch
from edge_client.load_signal import LoadSignal, lower_priority
from stylizer import load_model, PairSampler, make_optimizer, train_step
from fedvst.samples import sample_photo
from stylizer.images import load_image
torch.set_num_threads(1)
model, _ = load_model()
photos = [load_image(sample_photo(n)) for n in ("astronaut", "coffee", "chelsea")]
sampler, optimizer = PairSampler(photos, photos, base_size=64), make_optimizer(model)
load = LoadSignal(sys.argv[1]) if sys.argv[2] == "1" else None
if load is not None:
    lower_priority()
while True:
    if load is not None:
        load.wait_until_idle()
    train_step(model, sampler.sample(2), optimizer)
"""


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run_clients(port: int, clients: int, requests: int, frames: list[np.ndarray],
                style: np.ndarray) -> dict[str, float]:
    latencies: list[float] = []
    counts = {"errors": 0, "rejected": 0}
    lock = threading.Lock()

    def phone(seed: int) -> None:
        backend = RemoteBackend(f"127.0.0.1:{port}", timeout_s=120)
        backend.set_style(style)
        for i in range(requests):
            frame = frames[(seed * 7 + i) % len(frames)]
            start = time.perf_counter()
            try:
                backend.stylize_batch([KeyFrameJob(i, frame, SIZE)])
                with lock:
                    latencies.append((time.perf_counter() - start) * 1000)
            except Exception as exc:
                with lock:
                    counts["rejected" if "RESOURCE_EXHAUSTED" in str(exc) else "errors"] += 1
                time.sleep(0.05)
        backend.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=phone, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {"frames_per_second": round(len(latencies) / wall, 2), "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1), "errors": counts["errors"],
            "rejected": counts["rejected"]}


def reply_bytes_1080p(port: int, frames: list[np.ndarray], style: np.ndarray) -> dict[str, float]:
    """Mean serialized reply bytes for a 1920×1080 key frame: as a colour field and as a PNG."""
    import grpc

    from fedvst.protocol import fedvst_pb2, fedvst_pb2_grpc
    from fedvst.remote import encode_png

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = fedvst_pb2_grpc.StylizerStub(channel)
        handle = stub.UploadStyle(fedvst_pb2.UploadStyleRequest(image=encode_png(style)), timeout=120).handle
        sizes: dict[str, list[int]] = {"field": [], "png": []}
        for name, want_field in (("field", True), ("png", False)):
            requests = [fedvst_pb2.KeyFrame(style_handle=handle, index=i, image=encode_png(frame), target_width=1920,
                                            target_height=1080, reply_field=want_field)
                        for i, frame in enumerate(frames)]
            for reply in stub.Stylize(iter(requests), timeout=300):
                if want_field and not reply.HasField("field"):
                    raise RuntimeError("the edge's model answered with an image: it has no affine head")
                sizes[name].append(reply.ByteSize())
    return {name: round(float(np.mean(values))) for name, values in sizes.items()}


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def latency_with_trainer(port: int, data_dir: Path, backoff: bool | None, frames: list[np.ndarray],
                         style: np.ndarray, requests: int) -> dict[str, float]:
    """One phone's p50/p99 with a training loop beside the service (None: no trainer at all)."""
    if backoff is None:
        result = run_clients(port, 1, requests, frames, style)
        return {"p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"]}
    trainer = subprocess.Popen([sys.executable, "-c", TRAINER, str(data_dir / "serving.load"), str(int(backoff))],
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(8)  # let it load and start stepping
        result = run_clients(port, 1, requests, frames, style)
        return {"p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"]}
    finally:
        stop_process_group(trainer)


def restore_to_first_frame(tmp: Path, frames: list[np.ndarray], style: np.ndarray) -> dict[str, float]:
    """An edge with an empty data folder: seconds from process start to the first stylized frame, with
    the model restored from a real registry on 127.0.0.1."""
    from cloud_server.registry import start_registry
    from cloud_server.store import CheckpointStore
    from stylizer import load_checkpoint

    checkpoint = load_checkpoint(builtin_checkpoint_path())
    CheckpointStore(tmp / "cloud").save(1, checkpoint.state, checkpoint.metadata)
    registry, registry_port = start_registry(tmp / "cloud", "127.0.0.1:0")
    port = free_port()
    started = time.perf_counter()
    edge = start_cli(["edge", "serve", "--port", str(port), "--data-dir", str(tmp / "fresh-edge"), "--registry",
                      f"127.0.0.1:{registry_port}"], tmp / "fresh-edge.log")
    try:
        wait_for_port(port, edge, log=tmp / "fresh-edge.log", timeout_s=120)
        listening = time.perf_counter() - started
        backend = RemoteBackend(f"127.0.0.1:{port}", timeout_s=120)
        backend.set_style(style)
        backend.stylize_batch([KeyFrameJob(0, frames[0], SIZE)])
        first = time.perf_counter() - started
        backend.close()
    finally:
        stop_process_group(edge)
        registry.stop(1)
    return {"seconds_to_listening": round(listening, 2), "seconds_to_first_frame": round(first, 2)}


def write_short_clip(path: Path, frames: int = 24, size: tuple[int, int] = (180, 320)) -> Path:
    """The sample video's first ``frames`` frames at ``size`` (H, W), H.264: one phone's short clip."""
    from simulations.loopback import write_phone_clip

    return write_phone_clip(path, [frame.image for frame in read_frames(sample_video(), limit=frames)], size)


def phones_at_once(tmp: Path, phones: int, clip: Path, style_file: Path,
                   phone_args: tuple[str, ...] = ()) -> dict[str, float]:
    """``phones`` whole ``fedvst stylize`` runs of ``clip`` through one fresh edge (default capacity) at once."""
    data_dir, port = tmp / f"edge-{phones}", free_port()
    edge = start_cli(["edge", "serve", "--port", str(port), "--data-dir", str(data_dir), "--initial-checkpoint",
                      str(builtin_checkpoint_path())], tmp / f"edge-{phones}.log")
    try:
        wait_for_port(port, edge, log=tmp / f"edge-{phones}.log")
        started = time.perf_counter()
        runs = [(subprocess.Popen([sys.executable, "-m", "fedvst.cli", "stylize", str(clip), "--style",
                                   str(style_file), "-o", str(tmp / f"out-{phones}-{i}.mp4"), "--edge",
                                   f"127.0.0.1:{port}", "--share-frames", *phone_args], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True), time.perf_counter()) for i in range(phones)]
        walls, failures = [], []
        for process, began in runs:
            _, errors = process.communicate(timeout=1800)
            if process.returncode == 0:
                walls.append(time.perf_counter() - began)
            else:
                failures.append(errors.strip().splitlines()[-1] if errors.strip() else f"exit {process.returncode}")
        total = time.perf_counter() - started
        return {"completed": len(walls), "failed": len(failures), "video_p50_s": round(percentile(walls, 50), 2),
                "video_p99_s": round(percentile(walls, 99), 2), "all_done_s": round(total, 2),
                "edge_peak_rss_mb": peak_rss_mb(edge.pid), "first_failures": failures[:3]}
    finally:
        stop_process_group(edge)


def measure_phones(tmp: Path, counts: list[int], quiet: bool,
                   phone_args: tuple[str, ...] = ()) -> dict[str, dict[str, float]]:
    clip = write_short_clip(tmp / "clip.mp4")
    style_file = Path(sample_photo(DEMO_STYLE))
    results = {}
    for phones in counts:
        results[str(phones)] = phones_at_once(tmp, phones, clip, style_file, phone_args)
        if not quiet:
            print("phones", phones, results[str(phones)], file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="edge throughput and latency")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--requests", type=whole(1, 100_000), default=12, help="requests per client")
    parser.add_argument("--capacity", type=whole(1, 1024), default=4)
    parser.add_argument("--training-requests", type=whole(1, 100_000), default=40,
                        help="requests per training condition")
    parser.add_argument("--only-restore", action="store_true", help="measure only the restore-to-first-frame time")
    parser.add_argument("--only-phones", action="store_true", help="measure only whole phones at once")
    parser.add_argument("--phones", type=whole(1, 1024), nargs="+", default=[8, 32],
                        help="phones at once (whole videos)")
    parser.add_argument("--phone-args", default="", help="extra `fedvst stylize` options of every phone, e.g. "
                        "'--keyframes interval --interval 1' (every frame a key frame: the heaviest edge load)")
    args = parser.parse_args()
    frames = [np.ascontiguousarray(f.image[:, 64:576]) for f in read_frames(sample_video(), step=25, limit=8)]
    frames = [f[8:264] for f in frames]
    style = load_image(sample_photo(DEMO_STYLE))
    if args.only_restore:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps({"restore": restore_to_first_frame(Path(tmp), frames, style)}))
        return
    if args.only_phones:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps({"phones": measure_phones(Path(tmp), args.phones, args.json,
                                                       tuple(args.phone_args.split()))}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "edge"
        port = free_port()
        edge = start_cli(["edge", "serve", "--port", str(port), "--data-dir", str(data_dir), "--capacity",
                            str(args.capacity), "--initial-checkpoint", str(builtin_checkpoint_path())],
                         Path(tmp) / "edge.log")
        try:
            wait_for_port(port, edge, log=Path(tmp) / "edge.log")
            run_clients(port, 1, 2, frames, style)  # warm-up
            report: dict = {"clients": {}}
            for clients in (1, 4, 8):
                report["clients"][str(clients)] = run_clients(port, clients, args.requests, frames, style)
                if not args.json:
                    print(clients, report["clients"][str(clients)], file=sys.stderr)
            report["one_phone_latency"] = {
                name: latency_with_trainer(port, data_dir, backoff, frames, style, args.training_requests)
                for name, backoff in (("idle", None), ("training_with_backoff", True),
                                      ("training_without_backoff", False))}
            report["reply_bytes_1080p"] = reply_bytes_1080p(port, frames, style)
            report["peak_rss_mb"] = peak_rss_mb(edge.pid)
            report["restore"] = restore_to_first_frame(Path(tmp), frames, style)
            report["capacity"] = args.capacity
        finally:
            stop_process_group(edge)
        report["phones"] = measure_phones(Path(tmp), args.phones, args.json, tuple(args.phone_args.split()))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
