"""Seconds from a phone's last shared frame to a new global model at every edge.

    python -m simulations.bench_federation --json

A real cloud (``fedvst cloud serve --min-nodes 2``, built-in model) and two real edges with empty
stores on 127.0.0.1, as README.md runs them. A phone (``fedvst stylize --share-frames``, every
frame a key frame) stylizes a short clip (at most ``--frames`` frames of a training segment of the
sample media) through both edges. The clock starts when the phone's process ends (its last frame
is acknowledged) and stops when both edges' model slots hold the first aggregated round. The
readiness poll (``--poll-s``) and the images per round bound it. Then ``--rounds`` − 1 more rounds
follow, each after a new training segment, and the cloud's held-out total of every round (the
sample media's held-out split) is printed as ``heldout_loss_per_round``, with each round's paired
difference to the round before (``bench_learning.paired_differences``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from cloud_server.history import read_history
from fedvst.samples import DEMO_STYLE, TRAINING_SEGMENTS, sample_photo
from simulations.arguments import seconds, whole
from simulations.loopback import loopback_federation
from stylizer import builtin_checkpoint_path


def slot_sha(data_dir: Path) -> str | None:
    try:
        return json.loads((data_dir / "model" / "current.json").read_text()).get("sha256")
    except (OSError, ValueError):
        return None


def wait_for_round(federation, number: int, before: list[str | None], timeout_s: float = 1800) -> float:
    """Seconds until round ``number``'s model is in both edges' slots (RuntimeError after ``timeout_s``,
    or if an edge held it before the phone shared anything)."""
    started = time.perf_counter()
    round_file = federation.cloud_dir / "checkpoints" / f"round_{number:06d}.json"
    while time.perf_counter() < started + timeout_s:
        if round_file.exists():
            target = json.loads(round_file.read_text())["sha256"]
            if target in before:
                raise RuntimeError(f"round {number}'s model was already in an edge's slot before the phone shared")
            if all(slot_sha(federation.edge_dir(i)) == target for i in range(2)):
                return time.perf_counter() - started
        time.sleep(0.5)
    raise RuntimeError(f"round {number}'s model did not reach both edges within {timeout_s / 60:.0f} minutes")


def run(tmp: Path, images_per_round: int, poll_s: float, frames: int, rounds: int = 4) -> dict:
    """Round 1 is timed (the phone's last frame → the new model at both edges); then rounds 2…``rounds``
    each follow a new shot, and the cloud's held-out total of every round is reported."""
    from simulations.bench_learning import SAMPLES_HELDOUT_IMAGES, paired_differences, segment_shot

    cloud_options = ["--min-nodes", "2", "--rounds", str(rounds), "--images-per-round", str(images_per_round),
                     "--initial-checkpoint", str(builtin_checkpoint_path()), "--run-config", f"ready-poll-s={poll_s:g}",
                     "--run-config", "eval-images=2"]
    with loopback_federation(tmp, cloud_options, [[], []], timeout_s=120) as federation:
        report: dict = {}
        for number in range(1, rounds + 1):  # a new shot of the training split each round
            clip, start, stop = TRAINING_SEGMENTS[(number - 1) % len(TRAINING_SEGMENTS)]
            shot = segment_shot(tmp / f"clip{number}.mp4", (clip, start, min(stop, start + frames)))
            before = [slot_sha(federation.edge_dir(i)) for i in range(2)]
            phone_started = time.perf_counter()
            federation.share(shot, sample_photo(DEMO_STYLE), f"phone{number}", timeout_s=600)
            shared = time.perf_counter()
            seconds = wait_for_round(federation, number, before)
            if number == 1:
                meta = json.loads((federation.cloud_dir / "checkpoints" / "round_000001.json").read_text())
                report = {"phone_seconds": round(shared - phone_started, 1),
                          "seconds_to_global_model_at_every_edge": round(seconds, 1),
                          "examples_per_edge": sorted(meta["examples"].values())}
        deadline = time.monotonic() + 600  # the last round's score lands after the edges' evaluate replies
        while len(read_history(federation.cloud_dir / "history.jsonl")) < rounds + 1 and time.monotonic() < deadline:
            time.sleep(1.0)
        history = read_history(federation.cloud_dir / "history.jsonl")
    scores = {r["round"]: r["metrics"].get("heldout_total") for r in history}
    _, to_previous = paired_differences(federation.cloud_dir, federation.cloud_dir / "heldout",
                                        [n for n in sorted(scores) if n > 0], SAMPLES_HELDOUT_IMAGES)
    return {**report, "images_per_round": images_per_round, "ready_poll_s": poll_s, "key_frames": frames,
            "heldout_loss_per_round": {str(n): scores[n] for n in sorted(scores)},
            "paired_noise_vs_previous_round": {str(n): d for n, d in to_previous.items()},
            "each_round_lower_than_the_one_before_by_2_standard_errors": bool(to_previous) and all(
                d["mean"] < -2 * d["standard_error"] for d in to_previous.values()),
            "moved_max_per_round": {str(r["round"]): r.get("moved_max") for r in history if r["round"] > 0},
            "heldout": "the sample media's held-out split (the cloud's default)"}


def main() -> None:
    parser = argparse.ArgumentParser(description="phone's last shared frame → new global model at every edge")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--images-per-round", type=whole(1, 100_000), default=8)
    parser.add_argument("--poll-s", type=seconds(0, 3600), default=15.0, help="the cloud's readiness poll (run config)")
    parser.add_argument("--frames", type=whole(1, 10_000), default=48,
                        help="frames of each round's clip at most (each a key frame)")
    parser.add_argument("--rounds", type=whole(1, 12), default=4, help="rounds, each after a new clip")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(Path(tmp), args.images_per_round, args.poll_s, args.frames, args.rounds)
    print(json.dumps(result) if args.json else result, file=sys.stdout)


if __name__ == "__main__":
    main()
