"""Train one loss variant on the training split and score it on the held-out pairs (docs/benchmarks.md).

    python -m simulations.loss_variants --steps 400 --config '{"content_reference": "prior"}' [--lr 1e-4]

A fresh affine model (seed 0, the config's fields over ``StylizerConfig``'s defaults) trains with
``stylizer.training`` on ``fedvst.samples.training_pictures``; it is then scored like the built-in
by ``bench_photoreal`` (held-out pairs only): corr, colour, Eq. 5's content and style terms with the
ImageNet VGG-16, and the colour per pair. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from fedvst.samples import training_pictures
from simulations.bench_photoreal import evaluate, make_pairs
from stylizer import Stylizer, StylizerConfig, build_model
from stylizer.factory import save_model
from stylizer.training import PairSampler, make_optimizer, train_step


def score(model) -> dict:
    """Held-out means of corr, colour and the Eq. 5 terms, and the colour of every pair (``bench_photoreal``'s
    own evaluation)."""
    stylizer = Stylizer(model, precision="fp32")
    scores, _, colours = evaluate(make_pairs(), {"model": lambda c, s: stylizer.stylize_frame(c, s, size=c.shape[:2])})
    result = scores["model"]
    return {"corr": result["corr"], "colour": result["colour"], "content": result["eq5"]["content"],
            "style": result["eq5"]["style"], "colours": [round(float(x), 4) for x in colours["model"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--config", default="{}", help="StylizerConfig fields as JSON")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--base-size", type=int, default=64)
    parser.add_argument("--style-jitter", action="store_true")
    parser.add_argument("--out", default="", help="also save the trained model here (.safetensors)")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_model(StylizerConfig(**json.loads(args.config)), allow_download=False)
    contents, styles = training_pictures()
    sampler = PairSampler([c for _, c in contents], [s for _, s in styles], base_size=args.base_size,
                          seed=0, cover=(0.5, 1.0), style_jitter=args.style_jitter)
    optimizer = make_optimizer(model, lr=args.lr)
    started = time.monotonic()
    for _ in range(args.steps):
        train_step(model, sampler.sample(2), optimizer)
    seconds = round(time.monotonic() - started, 1)
    if args.out:
        save_model(args.out, model, step=args.steps)
    print(json.dumps({"config": json.loads(args.config), "steps": args.steps, "lr": args.lr,
                      "style_jitter": args.style_jitter, "train_seconds": seconds, **score(model)}))


if __name__ == "__main__":
    main()
