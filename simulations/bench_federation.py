"""Seconds from a phone's last shared frame to a new global model at every edge.

    python -m simulations.bench_federation --json

A real cloud (``fedvst cloud serve --min-nodes 2``, built-in model) and two real edges with empty
stores on 127.0.0.1, as README.md runs them. A phone (``fedvst stylize --share-frames``, every
frame a key frame) stylizes a short clip through both edges. The clock starts when the phone's
process ends (its last frame is acknowledged) and stops when both edges' model slots hold the
first aggregated round. The readiness poll (``--poll-s``) and the images per round bound it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from fedvst.samples import DEMO_STYLE, sample_photo
from simulations.arguments import seconds, whole
from simulations.bench_edge import write_short_clip
from simulations.loopback import loopback_federation
from stylizer import builtin_checkpoint_path


def slot_sha(data_dir: Path) -> str | None:
    try:
        return json.loads((data_dir / "model" / "current.json").read_text()).get("sha256")
    except (OSError, ValueError):
        return None


def run(tmp: Path, images_per_round: int, poll_s: float, frames: int) -> dict[str, float]:
    cloud_options = ["--min-nodes", "2", "--rounds", "1", "--images-per-round", str(images_per_round),
                     "--initial-checkpoint", str(builtin_checkpoint_path()), "--run-config", f"ready-poll-s={poll_s:g}",
                     "--run-config", "eval-images=2"]
    with loopback_federation(tmp, cloud_options, [[], []], timeout_s=120) as federation:
        clip = write_short_clip(tmp / "clip.mp4", frames=frames)
        before = [slot_sha(federation.edge_dir(i)) for i in range(2)]
        phone_started = time.perf_counter()
        federation.share(clip, sample_photo(DEMO_STYLE), "phone", timeout_s=600)
        shared = time.perf_counter()
        round_file = federation.cloud_dir / "checkpoints" / "round_000001.json"
        deadline = shared + 1800
        while time.perf_counter() < deadline:
            if round_file.exists():
                target = json.loads(round_file.read_text())["sha256"]
                if all(slot_sha(federation.edge_dir(i)) == target for i in range(2)):
                    break
            time.sleep(0.5)
        else:
            raise RuntimeError("no new global model reached both edges within 30 minutes")
        done = time.perf_counter()
        meta = json.loads(round_file.read_text())
        if any(b == meta["sha256"] for b in before):
            raise RuntimeError("round 1's model was already in an edge's slot before the phone shared anything")
        return {"phone_seconds": round(shared - phone_started, 1),
                "seconds_to_global_model_at_every_edge": round(done - shared, 1),
                "examples_per_edge": sorted(meta["examples"].values()), "images_per_round": images_per_round,
                "ready_poll_s": poll_s, "key_frames": frames}


def main() -> None:
    parser = argparse.ArgumentParser(description="phone's last shared frame → new global model at every edge")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--images-per-round", type=whole(1, 100_000), default=8)
    parser.add_argument("--poll-s", type=seconds(0, 3600), default=15.0, help="the cloud's readiness poll (run config)")
    parser.add_argument("--frames", type=whole(1, 10_000), default=48, help="frames of the clip (each a key frame)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(Path(tmp), args.images_per_round, args.poll_s, args.frames)
    print(json.dumps(result) if args.json else result, file=sys.stdout)


if __name__ == "__main__":
    main()
