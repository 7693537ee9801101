"""Does the deployed federation improve the model on pictures no edge saw?

    python -m simulations.bench_learning --json [--rounds 4] [--images-per-round 8] [--media corpus]

README.md's flow on 127.0.0.1: a real cloud (``fedvst cloud serve --min-nodes 2``, the built-in
model or, with ``--fresh-head``, a freshly initialised one: ``builtin`` is the built-in's own
architecture and loss, untrained) and two real edges that train between
syncs. Before each round a phone (``fedvst stylize --share-frames``, every frame a key frame)
stylizes one new shot of a *training* clip through both edges, with a training photo as the
style, and the cloud counts a round once both edges have trained on ``--images-per-round`` new
images. The cloud's ``history.jsonl`` gives each round's held-out total.

``--media corpus`` (the default; ``fedvst corpus`` fetches it): before each round a phone near
each edge shares its own shot through that edge alone: a never-repeated stretch of the photo
corpus' training clips and a few of its training photos, with a training colour photo of its own
as the style; the cloud scores every round on the corpus' held-out photos and clip frames
(``--heldout``). ``--media samples``: one phone shares the sample media's training segments
through both edges, and the cloud scores the sample media's held-out split.

Noise: two rounds' models are scored again, batch by batch, on the cloud's own held-out batches.
The mean difference and its standard error over the batches say whether a change is more than
the spread of the held-out pictures themselves; it is given against round 0 and against the
round before. ``--heldout-pairs`` sets how many held-out pairs the cloud scores (more pairs, a
smaller standard error); ``--rescore DIR`` scores the checkpoints of an earlier ``--keep DIR`` run
again on that many pairs of its held-out split, batch by batch, without starting a federation.
``--figure PNG`` draws a few held-out pairs as round 0 and the last round stylize them: a falling
total can hide blotches that only the pictures show.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from cloud_server.heldout import HeldOutSet
from cloud_server.history import read_history
from fedvst.samples import TRAINING_PHOTOS, TRAINING_SEGMENTS, sample_photo, segment_frames
from simulations.arguments import seconds, weight, whole
from simulations.corpus_media import clip_stretches, colour_training_photos, shrunk, write_corpus_heldout
from simulations.federated import fresh_checkpoint, untrained_builtin_checkpoint
from simulations.loopback import loopback_federation, write_phone_clip
from stylizer import load_checkpoint
from stylizer.config import MAX_LOSS_WEIGHT, NEUTRAL_RESIDUALS
from stylizer.factory import model_from_checkpoint
from stylizer.losses import target_features
from stylizer.training import evaluate

SHOT_SIDE = 320  # longest side of the phones' clips (px)
CLOUD_BASE_SIZE = 64  # the cloud's default (run config base-size)
SAMPLES_HELDOUT_IMAGES = 16  # the cloud's default heldout-images, used with the sample media
CORPUS_HELDOUT_IMAGES = 64  # with the corpus: 32 batches of 2, for a tighter paired noise
CORPUS_SHOT_FRAMES = 48  # frames per shot of a corpus training clip
CORPUS_PHOTOS = 8  # training photos each edge's phone also stylizes and shares each round (--photos)
SLIDESHOW_SIZE = (240, 320)  # (H, W) of a --slideshow clip's frames: 4:3, as SHOT_SIDE allows
PHOTO_SIDE = 640  # longest side of the photos phones share (px)
UNTRAINED_BUILTIN = "builtin"  # --fresh-head: the built-in's config with freshly initialised tensors


def corpus_shots(rounds: int, edges: int = 2, frames: int = CORPUS_SHOT_FRAMES,
                 photos: int = CORPUS_PHOTOS, seed: int = 0) -> list[list[dict]]:
    """Round k's shares, one per edge (a phone near each edge): a whole ``frames``-frame stretch of
    the corpus' training clips (``corpus_media.clip_stretches``: no frame in two shots) and
    ``photos`` training photos (none twice), all with one training colour photo as the style.
    ``seed`` picks the photos and styles, and for seed ≠ 0 the order of the stretches (seed 0 keeps
    the clips taken in turn, the shares of the runs in docs/benchmarks.md). ValueError when the
    training split holds too few for ``rounds``."""
    import numpy as np

    from fedvst.corpus import corpus_files

    order = clip_stretches(frames)
    if seed:
        order = [order[i] for i in np.random.default_rng(2022 + seed).permutation(len(order))]
    pictures = corpus_files("photo", "train")
    pictures = [pictures[i] for i in np.random.default_rng(2021 + seed).permutation(len(pictures))]
    if len(order) < rounds * edges or len(pictures) < rounds * edges * photos:
        raise ValueError(f"the corpus' training split holds {len(order)} shots of {frames} frames and "
                         f"{len(pictures)} photos, {rounds * edges} shots and {rounds * edges * photos} photos "
                         "needed: ask for fewer --rounds or --photos")
    styles = colour_training_photos()
    style_order = np.random.default_rng(2020 + seed).permutation(len(styles))
    shares = []
    for r in range(rounds):
        per_edge = []
        for e in range(edges):
            k = r * edges + e
            per_edge.append({"clip": order[k][0], "start": order[k][1], "stop": order[k][2],
                             "photos": pictures[k * photos:(k + 1) * photos],
                             "style": styles[int(style_order[k % len(styles)])]})
        shares.append(per_edge)
    return shares


def write_shot(path: Path, frames: list) -> Path:
    """``frames`` (H×W×3 uint8) as an H.264 file at most SHOT_SIDE px wide, 25 fps: a phone's video."""
    height, width = frames[0].shape[:2]
    factor = min(1.0, SHOT_SIDE / max(height, width))
    return write_phone_clip(path, frames, (2 * round(height * factor / 2), 2 * round(width * factor / 2)))


def phone_photo(photo: Path, path: Path) -> Path:
    """``photo`` at most PHOTO_SIDE px long, as PNG at ``path``: what a phone shares of a photo."""
    from stylizer.images import load_image

    shrunk(load_image(photo), PHOTO_SIDE).save(path)
    return path


def photo_slideshow(photos: list[Path], path: Path) -> Path:
    """``photos`` as one phone video, a photo a frame, each centre-cropped to SLIDESHOW_SIZE's 4:3 and
    resized to it: what a phone shares of many photos in one run (a run per photo costs a process
    start and a model load each)."""
    from stylizer.images import load_image

    height, width = SLIDESHOW_SIZE
    frames = []
    for photo in photos:
        pixels = load_image(photo)
        rows, cols = pixels.shape[:2]
        keep_rows, keep_cols = min(rows, round(cols * height / width)), min(cols, round(rows * width / height))
        top, left = (rows - keep_rows) // 2, (cols - keep_cols) // 2
        frames.append(pixels[top:top + keep_rows, left:left + keep_cols])
    return write_phone_clip(path, frames, SLIDESHOW_SIZE)


def write_style_bank(folder: Path, count: int, seed: int) -> Path:
    """``count`` of the corpus' training colour photos (a seeded choice) at most PHOTO_SIDE px, as PNG
    in ``folder``: an edge's ``--style-bank``, so that a round trains with many styles and not mostly
    its phones' one or two."""
    import numpy as np

    from stylizer.images import load_image

    styles = colour_training_photos()
    folder.mkdir(parents=True, exist_ok=True)
    for index in np.random.default_rng(2023 + seed).permutation(len(styles))[:count]:
        path = styles[int(index)]  # numbered below: two corpus packages may hold one file name
        shrunk(load_image(path), PHOTO_SIDE).save(folder / f"{int(index):04d}_{path.stem}.png")
    return folder


def segment_shot(path: Path, segment: tuple[str, int, int]) -> Path:
    """One whole shot of a sample-media training segment as a phone's video (``write_shot``)."""
    return write_shot(path, [image for _, image in segment_frames(segment)])


def clip_shot(path: Path, clip: Path, start: int, stop: int) -> Path:
    """Frames ``start``..``stop - 1`` of ``clip`` as a phone's video (``write_shot``)."""
    from fedvst.video.io import read_frames

    frames = [frame.image for frame in read_frames(clip, limit=stop) if frame.index >= start]
    if len(frames) < stop - start:
        raise ValueError(f"{clip.name} has no frames {start}–{stop - 1}: ask for fewer --rounds")
    return write_shot(path, frames)


def paired(first: list[float], later: list[float]) -> dict[str, float]:
    """Mean of ``later - first`` batch by batch, its standard error over the batches, and their count."""
    differences = [b - a for a, b in zip(first, later, strict=True)]
    mean = sum(differences) / len(differences)
    spread = math.sqrt(sum((d - mean) ** 2 for d in differences) / max(1, len(differences) - 1))
    return {"mean": mean, "standard_error": spread / math.sqrt(len(differences)), "batches": len(differences)}


def batch_scores(cloud_dir: Path, heldout: Path, rounds: list[int], images: int) -> dict[int, list[float]]:
    """Round 0's and each of ``rounds``' checkpoint scored batch by batch (Eq. 5 total per batch) on
    the cloud's own held-out batches: ``images`` pairs of ``heldout``, drawn as the cloud draws them."""
    first = load_checkpoint(cloud_dir / "checkpoints" / "round_000000.safetensors")
    description = {"encoder": first.metadata["encoder"], "config": first.metadata["config"]}
    held = HeldOutSet(heldout, description, CLOUD_BASE_SIZE, images)  # the cloud's own batches
    targets: list | None = None  # the batches' Eq. 5 targets: the same for every round (one encoder)

    def per_batch(checkpoint) -> list[float]:
        nonlocal targets
        model = model_from_checkpoint(checkpoint, allow_download=False)
        if targets is None:
            targets = [target_features(model.encoder, b.content_target, b.style_target) for b in held.batches]
        return [evaluate(model, [b], targets=[t]).total for b, t in zip(held.batches, targets, strict=True)]

    scores = {0: per_batch(first)}
    for number in rounds:
        scores[number] = per_batch(load_checkpoint(cloud_dir / "checkpoints" / f"round_{number:06d}.safetensors"))
    return scores


def paired_differences(cloud_dir: Path, heldout: Path, rounds: list[int], images: int
                       ) -> tuple[dict[int, dict[str, float]], dict[int, dict[str, float]]]:
    """Each of ``rounds``' held-out total minus round 0's, and minus the round before's, batch by
    batch on the cloud's own held-out batches (``paired``)."""
    scores = batch_scores(cloud_dir, heldout, rounds, images)
    to_first = {number: paired(scores[0], scores[number]) for number in rounds}
    to_previous = {number: paired(scores[number - 1], scores[number]) for number in rounds if number - 1 in scores}
    return to_first, to_previous


def kept_checkpoint_rounds(cloud_dir: Path) -> list[int]:
    """The round numbers (> 0) whose checkpoints a kept run's cloud folder holds, in order."""
    numbers = [path.stem.removeprefix("round_") for path in (cloud_dir / "checkpoints").glob("round_*.safetensors")]
    return sorted(int(number) for number in numbers if number.isdigit() and int(number) > 0)


def kept_heldout(kept: Path) -> Path:
    """The held-out folder a run kept under ``kept`` scored: the corpus split it wrote, else the
    cloud's own (the sample media's)."""
    return kept / "heldout" if (kept / "heldout" / "content").is_dir() else kept / "cloud" / "heldout"


def rescore(kept: Path, pairs: int) -> dict:
    """An earlier ``--keep`` run's checkpoints scored again on ``pairs`` pairs of its held-out split:
    each round's total (the mean over the batches), and the paired differences to round 0 and to the
    round before (mean ± standard error over the batches)."""
    cloud_dir = kept / "cloud"
    rounds = kept_checkpoint_rounds(cloud_dir)
    scores = batch_scores(cloud_dir, kept_heldout(kept), rounds, pairs)
    to_previous = {n: paired(scores[n - 1], scores[n]) for n in rounds if n - 1 in scores}
    return {"rescored": str(kept), "heldout_pairs": len(scores[0]) * 2,
            "heldout_loss_per_round": {str(n): sum(v) / len(v) for n, v in sorted(scores.items())},
            "paired_noise_vs_previous_round": {str(n): d for n, d in to_previous.items()},
            "minus_round_0_paired": {str(n): paired(scores[0], scores[n]) for n in rounds},
            "each_round_lower_than_the_one_before_by_2_standard_errors": all(
                d["mean"] < -2 * d["standard_error"] for d in to_previous.values()) if to_previous else False}


def draw_rounds(kept: Path, figure: Path, count: int = 6) -> Path:
    """``learning_figure.round_sheet`` of a run's folder ``kept``: its first kept round (round 0
    unless pruned), its last round and, when the first is not the built-in, the built-in, on
    ``count`` pairs of the held-out split it scored."""
    from simulations.learning_figure import round_sheet
    from stylizer.factory import builtin_checkpoint_path

    checkpoints = kept / "cloud" / "checkpoints"
    numbers = ([0] if (checkpoints / "round_000000.safetensors").is_file() else []) + kept_checkpoint_rounds(
        kept / "cloud")  # round 0 first; a long run's cloud may have pruned it
    if not numbers:
        raise ValueError(f"no round checkpoints in {checkpoints} to draw")
    drawn = dict.fromkeys((numbers[0], numbers[-1]))  # one column when only one round is kept
    columns = {f"round {n}": checkpoints / f"round_{n:06d}.safetensors" for n in drawn}
    if load_checkpoint(next(iter(columns.values()))).sha256 != load_checkpoint(builtin_checkpoint_path()).sha256:
        columns["built-in"] = builtin_checkpoint_path()
    return round_sheet(kept_heldout(kept), columns, figure, count)


def run(tmp: Path, rounds: int, images_per_round: int, poll_s: float, fresh_head: str | None = None,
        media: str = "corpus", run_config: list[str] | None = None, heldout_pairs: int | None = None,
        seed: int = 0, photos: int = CORPUS_PHOTOS, slideshow: bool = False, style_bank_photos: int = 0,
        glow_weight: float = 0.0, neutral_residual: str = "local") -> dict:
    if fresh_head == UNTRAINED_BUILTIN:
        initial = ["--initial-checkpoint", str(untrained_builtin_checkpoint(tmp / "fresh.safetensors", 0))]
    else:
        fresh = (fresh_checkpoint(tmp / "fresh.safetensors", fresh_head, 0.5, 0, glow_weight, neutral_residual)
                 if fresh_head else None)
        initial = ["--initial-checkpoint", str(fresh)] if fresh else []
    if media == "corpus":
        heldout, heldout_images = write_corpus_heldout(tmp / "heldout"), heldout_pairs or CORPUS_HELDOUT_IMAGES
        shots = corpus_shots(rounds, photos=photos, seed=seed)
    else:
        heldout, heldout_images, shots = tmp / "cloud" / "heldout", heldout_pairs or SAMPLES_HELDOUT_IMAGES, []
    heldout_options = (["--heldout", str(heldout)] if media == "corpus" else []) + [
        "--run-config", f"heldout-images={heldout_images}"]
    cloud_options = ["--min-nodes", "2", "--rounds", str(rounds), "--images-per-round", str(images_per_round),
                     "--run-config", f"ready-poll-s={poll_s:g}", *heldout_options, *initial,
                     *[arg for item in run_config or [] for arg in ("--run-config", item)]]
    bank = (["--style-bank", str(write_style_bank(tmp / "style_bank", style_bank_photos, seed))]
            if style_bank_photos else [])  # else the edges' default bank
    started = time.monotonic()
    with loopback_federation(tmp, cloud_options, [["--name", f"edge{i}", *bank] for i in range(2)],
                             timeout_s=180) as federation:
        cloud_dir = federation.cloud_dir
        shared = []
        for number in range(1, rounds + 1):
            if media == "corpus":  # a phone near each edge, each with its own shot and style
                for edge, shot in enumerate(shots[number - 1]):
                    clip = clip_shot(tmp / f"shot{number}_{edge}.mp4", shot["clip"], shot["start"], shot["stop"])
                    frames = f"frames {shot['start']}–{shot['stop'] - 1}"
                    shared.append({"round": number, "edge": f"edge{edge}", "shot": f"{shot['clip'].name} {frames}",
                                   "style": shot["style"].name})
                    federation.share(clip, shot["style"], f"phone{number}_{edge}", timeout_s=900, edges=[edge])
                    if slideshow:  # one phone run for all of the round's photos
                        if shot["photos"]:
                            federation.share(photo_slideshow(shot["photos"], tmp / f"slides{number}_{edge}.mp4"),
                                             shot["style"], f"phone{number}_{edge}_slides", timeout_s=900,
                                             edges=[edge])
                    else:
                        for k, photo in enumerate(shot["photos"]):
                            federation.share(phone_photo(photo, tmp / f"photo{number}_{edge}_{k}.png"),
                                             shot["style"], f"phone{number}_{edge}_photo{k}", timeout_s=300,
                                             edges=[edge])
                    shared[-1]["photos"] = [photo.name for photo in shot["photos"]]
            else:  # one phone through both edges
                segment = TRAINING_SEGMENTS[(number - 1) % len(TRAINING_SEGMENTS)]
                style = sample_photo(TRAINING_PHOTOS[(number - 1) % len(TRAINING_PHOTOS)])
                shared.append({"round": number, "shot": f"{segment[0]} frames {segment[1]}–{segment[2] - 1}",
                               "style": style.stem})
                federation.share(segment_shot(tmp / f"shot{number}.mp4", segment), style, f"phone{number}",
                                 timeout_s=900)
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
    to_first, to_previous = paired_differences(cloud_dir, heldout, [r["round"] for r in history if r["round"] > 0],
                                               heldout_images)
    numbers = sorted(scores)
    return {"heldout_loss_per_round": {str(n): scores[n] for n in numbers},
            "paired_noise_vs_previous_round": {str(n): to_previous[n] for n in numbers if n in to_previous},
            "each_round_lower_than_the_one_before_by_2_standard_errors": all(
                d["mean"] < -2 * d["standard_error"] for d in to_previous.values()) if to_previous else False,
            "rounds": [{"round": r["round"], "heldout_total": scores[r["round"]],
                        "heldout_content": r["metrics"].get("heldout_content"),
                        "heldout_style": r["metrics"].get("heldout_style"),
                        "moved_max": r.get("moved_max"), "moved_rms": r.get("moved_rms"),
                        "images": {r.get("names", {}).get(node, node): n for node, n in r.get("examples", {}).items()},
                        "relative_to_round_0": scores[r["round"]] / scores[0] if scores.get(0) else None,
                        "minus_round_0_paired": to_first.get(r["round"])}
                       for r in history],
            "shared": shared, "media": media, "heldout_pairs": heldout_images // 2 * 2,
            "lower_than_round_0_by_more_than_2_standard_errors": {
                number: d["mean"] < -2 * d["standard_error"] for number, d in to_first.items()},
            "images_per_round": images_per_round, "run_config": run_config or [], "seed": seed,
            "photos_per_edge_and_round": photos if media == "corpus" else 0, "slideshow": slideshow,
            "style_bank": f"{style_bank_photos} corpus training photos" if style_bank_photos else "the edges' default",
            "encoder": settings["encoder"]["identity"],
            "initial_model": ("the built-in's architecture, untrained" if fresh_head == UNTRAINED_BUILTIN
                              else f"fresh {fresh_head} head" if fresh_head else "built-in"),
            "glow_weight": glow_weight if fresh_head == "affine" else None,
            "neutral_residual": neutral_residual if fresh_head == "affine" else None,
            "wall_seconds": round(time.monotonic() - started, 1)}


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One line (argparse's exit 2) for settings no federation could run, before anything starts."""
    if args.figure is not None and (args.figure.suffix.lower() not in (".png", ".jpg", ".jpeg")
                                    or args.figure.is_dir()):
        parser.error(f"--figure {args.figure}: give a file name ending in .png or .jpg")
    for item in args.run_config or []:
        key, sep, _ = item.partition("=")
        if not sep or not key:
            parser.error(f"--run-config takes KEY=VALUE, got {item!r}")
    if args.rescore is not None:
        if not kept_checkpoint_rounds(args.rescore / "cloud") or not (
                args.rescore / "cloud" / "checkpoints" / "round_000000.safetensors").is_file():
            parser.error(f"--rescore {args.rescore}: no round checkpoints in {args.rescore / 'cloud' / 'checkpoints'}; "
                         "pass the folder an earlier run was given with --keep")
        if not (kept_heldout(args.rescore) / "content").is_dir():
            parser.error(f"--rescore {args.rescore}: its held-out folder {kept_heldout(args.rescore)} is missing")
        return
    if args.glow_weight and args.fresh_head != "affine":
        parser.error("--glow-weight sets the loss of a fresh affine head: pass --fresh-head affine (the built-in "
                     f"and '{UNTRAINED_BUILTIN}' carry their own; the image head has no field to glow)")
    if args.neutral_residual != "local" and args.fresh_head != "affine":
        parser.error("--neutral-residual sets what a fresh affine head's residual may do to greys: pass --fresh-head "
                     f"affine (the built-in and '{UNTRAINED_BUILTIN}' carry their own; the image head has no residual)")
    if args.media == "corpus":
        from fedvst.corpus import CorpusMissingError, load_manifest

        try:
            load_manifest()
            corpus_shots(args.rounds, photos=args.photos, seed=args.seed)
        except CorpusMissingError as error:
            parser.error(f"{error} (or pass --media samples)")
        except ValueError as error:
            parser.error(str(error))
    elif args.slideshow or args.photos != CORPUS_PHOTOS or args.style_bank_photos:
        parser.error("--photos, --slideshow and --style-bank-photos are for the corpus' photos: leave them out with "
                     "--media samples")


def main() -> None:
    parser = argparse.ArgumentParser(description="held-out loss per round of a real 2-edge federation on loopback")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=whole(1, 12), default=4)
    parser.add_argument("--images-per-round", type=whole(1, 100_000), default=8)
    parser.add_argument("--poll-s", type=seconds(0, 3600), default=3.0, help="the cloud's readiness poll (run config)")
    parser.add_argument("--fresh-head", choices=("image", "affine", UNTRAINED_BUILTIN),
                        help="start from a freshly initialised model with this head (default: the built-in model); "
                             f"'{UNTRAINED_BUILTIN}': the built-in's architecture and loss, untrained (the closed-form "
                             "prior), where the built-in's own training started")
    parser.add_argument("--glow-weight", type=weight(MAX_LOSS_WEIGHT), default=0.0,
                        help="with --fresh-head affine: the glow term's weight in its loss (stylizer.losses.glow; "
                             "the built-in's is 1e8), so the edges train with it (default 0: none)")
    parser.add_argument("--neutral-residual", choices=NEUTRAL_RESIDUALS, default="local",
                        help="with --fresh-head affine: what its learned residual may do to greys, white and black "
                             "(stylizer.config: local, global: one shift for the whole frame, none: the prior's)")
    parser.add_argument("--media", choices=("corpus", "samples"), default="corpus",
                        help="the photo corpus' training clips and held-out split (default), or the sample media's")
    parser.add_argument("--run-config", action="append", metavar="KEY=VALUE",
                        help="more run config for the cloud (fedvst cloud serve --run-config), e.g. learning-rate=3e-5")
    parser.add_argument("--keep", type=Path, help="keep the cloud's and edges' folders here")
    parser.add_argument("--heldout-pairs", type=whole(2, 4096),
                        help=f"held-out pairs scored each round (default {CORPUS_HELDOUT_IMAGES} with the corpus, "
                             f"{SAMPLES_HELDOUT_IMAGES} with the samples): more pairs, a smaller paired noise")
    parser.add_argument("--seed", type=whole(0, 1_000_000), default=0,
                        help="with the corpus: which stretches, photos and styles the phones share (0: the runs of "
                             "docs/benchmarks.md)")
    parser.add_argument("--photos", type=whole(0, 256), default=CORPUS_PHOTOS,
                        help=f"with the corpus: training photos each edge's phone shares per round (default "
                             f"{CORPUS_PHOTOS})")
    parser.add_argument("--slideshow", action="store_true",
                        help="with the corpus: each phone shares its round's photos as one video, a photo a frame "
                             "(one phone run instead of one per photo)")
    parser.add_argument("--style-bank-photos", type=whole(0, 256), default=0,
                        help="with the corpus: the edges' style bank is this many of its training colour photos "
                             "(default: the edges' own default bank)")
    parser.add_argument("--rescore", type=Path, metavar="DIR",
                        help="no federation: score the checkpoints an earlier --keep DIR run kept again, batch by "
                             "batch, on --heldout-pairs pairs of its held-out split")
    parser.add_argument("--figure", type=Path, metavar="PNG",
                        help="also draw held-out pairs as round 0, the last round and the built-in stylize them "
                             "(simulations.learning_figure): look at what the rounds did, not only at the scores")
    args = parser.parse_args()
    check_arguments(parser, args)
    with contextlib.ExitStack() as stack:  # a run without --keep lives in a folder removed after its figure
        if args.rescore is not None:
            folder = args.rescore
            result = rescore(folder, args.heldout_pairs or CORPUS_HELDOUT_IMAGES)
        else:
            folder = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory()))
            folder.mkdir(parents=True, exist_ok=True)
            result = run(folder, args.rounds, args.images_per_round, args.poll_s, args.fresh_head, args.media,
                         args.run_config, args.heldout_pairs, args.seed, args.photos, args.slideshow,
                         args.style_bank_photos, args.glow_weight, args.neutral_residual)
        if args.figure:
            result["figure"] = str(draw_rounds(folder, args.figure))
    print(json.dumps(result, indent=None if args.json else 1), file=sys.stdout)


if __name__ == "__main__":
    main()
