"""Does the deployed federation improve the model on pictures no edge saw?

    python -m simulations.bench_learning --json [--rounds 4] [--images-per-round 8]

README.md's flow on 127.0.0.1: a real cloud (``fedvst cloud serve --min-nodes 2``, the built-in
model or, with ``--fresh-head``, a freshly initialised one, scoring every round on the sample
media's held-out split) and two real edges that train between syncs. Before each round a phone
(``fedvst stylize --share-frames``, every frame a key frame) stylizes one shot of the *training*
clips through both edges, with a training photo as the style, and the cloud counts a round once
both edges have trained on ``--images-per-round`` new
images. The cloud's ``history.jsonl`` gives each round's held-out total.

Noise: the round-R model and round 0's are scored again, pair by pair, on the same held-out
batches. Their mean difference and its standard error over the pairs say whether a change is
more than the spread of the held-out pictures themselves.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from cloud_server.heldout import HeldOutSet
from cloud_server.history import read_history
from fedvst.samples import TRAINING_PHOTOS, TRAINING_SEGMENTS, sample_photo, segment_frames
from simulations.federated import fresh_checkpoint
from simulations.loopback import loopback_federation
from stylizer import load_checkpoint
from stylizer.factory import model_from_checkpoint
from stylizer.losses import target_features
from stylizer.training import evaluate

SHOT_SIDE = 320  # longest side of the phones' clips (px)
CLOUD_BASE_SIZE, CLOUD_HELDOUT_IMAGES = 64, 16  # the cloud's defaults (run config base-size, heldout-images)


def write_segment(path: Path, segment: tuple[str, int, int]) -> Path:
    """One whole shot of a training clip as an H.264 file, at most SHOT_SIDE px wide: a phone's video."""
    import av

    from stylizer.render import resize_frame

    frames = [image for _, image in segment_frames(segment)]
    height, width = frames[0].shape[:2]
    factor = min(1.0, SHOT_SIDE / max(height, width))
    size = (2 * round(height * factor / 2), 2 * round(width * factor / 2))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(resize_frame(image, size), format="rgb24")))
        container.mux(stream.encode(None))
    return path


def paired_differences(cloud_dir: Path, rounds: list[int], images: int) -> dict[int, dict[str, float]]:
    """Each of ``rounds``' held-out total minus round 0's, batch by batch on the cloud's own held-out
    batches: mean, standard error over the batches, and their count."""
    first = load_checkpoint(cloud_dir / "checkpoints" / "round_000000.safetensors")
    description = {"encoder": first.metadata["encoder"], "config": first.metadata["config"]}
    held = HeldOutSet(cloud_dir / "heldout", description, CLOUD_BASE_SIZE, images)  # the cloud's own batches
    targets: list | None = None  # the batches' Eq. 5 targets: the same for every round (one encoder)

    def per_batch(checkpoint) -> list[float]:
        nonlocal targets
        model = model_from_checkpoint(checkpoint, allow_download=False)
        if targets is None:
            targets = [target_features(model.encoder, b.content_target, b.style_target) for b in held.batches]
        return [evaluate(model, [b], targets=[t]).total for b, t in zip(held.batches, targets, strict=True)]

    baseline = per_batch(first)
    out = {}
    for number in rounds:
        later = per_batch(load_checkpoint(cloud_dir / "checkpoints" / f"round_{number:06d}.safetensors"))
        differences = [b - a for a, b in zip(baseline, later, strict=True)]
        mean = sum(differences) / len(differences)
        spread = math.sqrt(sum((d - mean) ** 2 for d in differences) / max(1, len(differences) - 1))
        out[number] = {"mean": mean, "standard_error": spread / math.sqrt(len(differences)),
                       "batches": len(differences)}
    return out


def run(tmp: Path, rounds: int, images_per_round: int, poll_s: float, fresh_head: str | None = None) -> dict:
    initial = (["--initial-checkpoint", str(fresh_checkpoint(tmp / "fresh.safetensors", fresh_head, 0.5, 0))]
               if fresh_head else [])
    cloud_options = ["--min-nodes", "2", "--rounds", str(rounds), "--images-per-round", str(images_per_round),
                     "--run-config", f"ready-poll-s={poll_s:g}", *initial]
    started = time.monotonic()
    with loopback_federation(tmp, cloud_options, [["--name", f"edge{i}"] for i in range(2)],
                             timeout_s=180) as federation:
        cloud_dir = federation.cloud_dir
        shared = []
        for number in range(1, rounds + 1):
            segment = TRAINING_SEGMENTS[(number - 1) % len(TRAINING_SEGMENTS)]
            style = TRAINING_PHOTOS[(number - 1) % len(TRAINING_PHOTOS)]
            federation.share(write_segment(tmp / f"shot{number}.mp4", segment), sample_photo(style), f"phone{number}",
                             timeout_s=900)
            shared.append({"round": number, "shot": f"{segment[0]} frames {segment[1]}–{segment[2] - 1}",
                           "style": style})
            deadline = time.monotonic() + 1800
            while not (cloud_dir / "checkpoints" / f"round_{number:06d}.json").exists():
                if time.monotonic() > deadline or federation.cloud.poll() is not None:
                    raise RuntimeError(f"round {number} was not counted within 30 minutes; see {tmp / 'cloud.log'}")
                time.sleep(1.0)
        deadline = time.monotonic() + 600  # the last round's score lands after the edges' evaluate replies
        while len(read_history(cloud_dir / "history.jsonl")) < rounds + 1 and time.monotonic() < deadline:
            time.sleep(1.0)
        history = read_history(cloud_dir / "history.jsonl")
    scores = {r["round"]: r["metrics"].get("heldout_total") for r in history}
    settings = json.loads((cloud_dir / "checkpoints" / "round_000000.json").read_text())
    differences = paired_differences(cloud_dir, [r["round"] for r in history if r["round"] > 0],
                                     CLOUD_HELDOUT_IMAGES)
    return {"rounds": [{"round": r["round"], "heldout_total": scores[r["round"]],
                        "heldout_content": r["metrics"].get("heldout_content"),
                        "heldout_style": r["metrics"].get("heldout_style"),
                        "images": {r.get("names", {}).get(node, node): n for node, n in r.get("examples", {}).items()},
                        "relative_to_round_0": scores[r["round"]] / scores[0] if scores.get(0) else None,
                        "minus_round_0_paired": differences.get(r["round"])}
                       for r in history],
            "shared": shared,
            "lower_than_round_0_by_more_than_2_standard_errors": {
                number: d["mean"] < -2 * d["standard_error"] for number, d in differences.items()},
            "images_per_round": images_per_round, "encoder": settings["encoder"]["identity"],
            "initial_model": f"fresh {fresh_head} head" if fresh_head else "built-in",
            "wall_seconds": round(time.monotonic() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description="held-out loss per round of a real 2-edge federation on loopback")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--images-per-round", type=int, default=8)
    parser.add_argument("--poll-s", type=float, default=3.0, help="the cloud's readiness poll (run config)")
    parser.add_argument("--fresh-head", choices=("image", "affine"),
                        help="start from a freshly initialised model with this head (default: the built-in model)")
    parser.add_argument("--keep", type=Path, help="keep the cloud's and edges' folders here")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = run(args.keep, args.rounds, args.images_per_round, args.poll_s, args.fresh_head)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(Path(tmp), args.rounds, args.images_per_round, args.poll_s, args.fresh_head)
    print(json.dumps(result, indent=None if args.json else 1), file=sys.stdout)


if __name__ == "__main__":
    main()
