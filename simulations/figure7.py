"""Figure 7 from the simulation's rows: smoothed curves, seed bands, images to a target loss.

A row is one round of one run: ``seed``, ``edges`` (N), ``round``, ``images_per_edge`` and the
held-out losses ``total``, ``content`` and ``style``. A run is one (N, seed); every run of the
same N has the same rounds, so runs are compared at the same images per edge.
"""

from __future__ import annotations

from pathlib import Path
from statistics import fmean

Curve = list[tuple[int, float]]  # (images per edge, loss), in round order


def runs(rows: list[dict], edges: int) -> dict[int, list[dict]]:
    """Rows of each seed's run with ``edges`` edges, in round order."""
    out: dict[int, list[dict]] = {}
    for row in sorted((r for r in rows if r["edges"] == edges), key=lambda r: (r["seed"], r["round"])):
        out.setdefault(int(row["seed"]), []).append(row)
    return out


def smoothed(run: list[dict], window: int, key: str = "total") -> Curve:
    """(images per edge, trailing mean of ``key`` over ``window`` rounds) for one run."""
    out = []
    for i, row in enumerate(run):
        recent = [r[key] for r in run[max(0, i - window + 1):i + 1]]
        out.append((int(row["images_per_edge"]), sum(recent) / len(recent)))
    return out


def band(rows: list[dict], edges: int, window: int, key: str = "total") -> tuple[list[int], list[float], list[float],
                                                                                  list[float]]:
    """(images per edge, mean, min, max over seeds of the smoothed ``key``) at the images every seed reached."""
    curves = [dict(smoothed(run, window, key)) for run in runs(rows, edges).values()]
    images = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    values = [[c[i] for c in curves] for i in images]
    return images, [fmean(v) for v in values], [min(v) for v in values], [max(v) for v in values]


def default_target(rows: list[dict], window: int = 3) -> float:
    """The lowest loss that every seed of the smallest federation reaches once it has trained: each
    seed's best smoothed loss after round 0 (round 0, the initial model, counts only for a seed that
    never gets below it), the highest of them. So every fewest-edges seed reaches the target, and the
    larger federations are timed to where the slowest small one got (the paper's 0.0748 is where its
    1-edge run gets to)."""
    fewest = min(r["edges"] for r in rows)
    best = []
    for run in runs(rows, fewest).values():
        curve = smoothed(run, window)
        trained = [loss for images, loss in curve if images > 0] or [loss for _, loss in curve]
        best.append(min(trained))
    return float(max(best))


def clip_steep_start(ax, rows: list[dict], key: str) -> None:
    """A fresh decoder starts orders of magnitude above where it settles: then the y axis shows the
    last three quarters of the images (where the federations differ), and says what it leaves out."""
    values = [r[key] for r in rows]
    later = [r[key] for r in rows if r["images_per_edge"] >= 0.25 * max(r["images_per_edge"] for r in rows)]
    if not values or not later or max(values) <= 10 * max(later):
        return
    low, high = min(later), max(later)
    ax.set_ylim(low - 0.1 * (high - low), high + 0.3 * (high - low))
    initial = fmean(r[key] for r in rows if r["round"] == 0)
    ax.text(0.98, 0.97, f"earlier rounds above the axis (round 0: {initial:.3g})", transform=ax.transAxes,
            ha="right", va="top", fontsize=7, color="grey")


def first_at_or_below(curve: Curve, target: float) -> int | None:
    """The fewest images per edge at which ``curve`` is ≤ ``target`` (None: never)."""
    reached = [images for images, loss in curve if loss <= target]
    return min(reached) if reached else None


def spread(values: list[float]) -> dict[str, float | None]:
    """mean, min and max of ``values`` (None each when there are none)."""
    if not values:
        return {"mean": None, "min": None, "max": None}
    return {"mean": round(fmean(values), 6), "min": min(values), "max": max(values)}


def images_to_target(rows: list[dict], target: float, window: int = 3) -> dict[str, dict]:
    """Per N: images per edge each seed needs to reach ``target`` (smoothed), and their mean, min and
    max over the seeds that reached it (``reached`` of ``runs``)."""
    result: dict[str, dict] = {}
    for edges in sorted({r["edges"] for r in rows}):
        per_seed = {seed: first_at_or_below(smoothed(run, window), target) for seed, run in runs(rows, edges).items()}
        reached = [float(v) for v in per_seed.values() if v is not None]
        result[str(edges)] = {**spread(reached), "reached": len(reached), "runs": len(per_seed),
                              "per_seed": {str(seed): v for seed, v in per_seed.items()}}
    return result


def final_loss(rows: list[dict], window: int = 3) -> dict[str, dict]:
    """Per N: the smoothed held-out total after the last round, mean, min and max over seeds."""
    result = {}
    for edges in sorted({r["edges"] for r in rows}):
        last = [smoothed(run, window)[-1][1] for run in runs(rows, edges).values()]
        result[str(edges)] = {k: (round(v, 6) if v is not None else None) for k, v in spread(last).items()}
    return result


def plot(rows: list[dict], path: Path, window: int = 3, target: float | None = None) -> None:
    """Figure 7: held-out total, content and style loss against images per edge, one colour per N.

    The line is the mean over seeds of each run's ``window``-round trailing mean (what the
    images-to-target table is read from) and the shaded band its min–max over the seeds; with one
    seed each round's own value is a faint dot instead. ``target``: a dashed line on the total panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = sorted({r["seed"] for r in rows})
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, key in zip(axes, ("total", "content", "style"), strict=True):
        for colour, edges in enumerate(sorted({r["edges"] for r in rows})):
            images, mean, low, high = band(rows, edges, window, key)
            label = f"{edges} edge{'s' if edges > 1 else ''}"
            if len(seeds) > 1:
                ax.fill_between(images, low, high, color=f"C{colour}", alpha=0.18, linewidth=0)
            else:
                run = next(iter(runs(rows, edges).values()))
                ax.plot([r["images_per_edge"] for r in run], [r[key] for r in run], "o", markersize=2.5, alpha=0.35,
                        color=f"C{colour}")
            ax.plot(images, mean, color=f"C{colour}", label=label)
        if key == "total" and target is not None:
            ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:.4g}")
        clip_steep_start(ax, rows, key)
        over = f"mean of {len(seeds)} seeds, band min–max" if len(seeds) > 1 else f"seed {seeds[0]}"
        ax.set_title(f"{key} loss (held-out, {window}-round mean)\n{over}", fontsize=9)
        ax.set_xlabel("images trained per edge (mean over the edges)")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def read_rows(path: Path) -> list[dict]:
    """A simulation's ``curves.csv`` as rows (seed, edges, round and images_per_edge as int; the losses
    as float). Raises ValueError naming the file if a column is missing or a value is not a number."""
    import csv

    ints, floats = ("seed", "edges", "round", "images_per_edge"), ("total", "content", "style")
    rows = []
    with path.open(newline="") as handle:
        for line, record in enumerate(csv.DictReader(handle), start=2):
            try:
                rows.append({**{k: int(record[k]) for k in ints}, **{k: float(record[k]) for k in floats}})
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{path}, line {line}: not a curves.csv row ({error})") from None
    if not rows:
        raise ValueError(f"{path} holds no rows")
    return rows


def resummarise(rows: list[dict], summary: dict, window: int, target: float | None = None) -> dict:
    """``summary`` (a simulation's summary.json, or the rest of one) with its target (``default_target``
    unless given), images to it and final loss computed from ``rows`` over ``window`` rounds; the rest
    (costs, the run's settings) kept as given. ``fedvst simulate`` writes its summary through this."""
    target = default_target(rows, window) if target is None else target
    return {**summary, "target_loss": round(target, 6), "images_to_target": images_to_target(rows, target, window),
            "final_loss": final_loss(rows, window), "smoothing_rounds": window}


def main(argv: list[str] | None = None) -> int:
    """``python -m simulations.figure7 RUN OUT``: the summary.json and figure7.png of the simulation
    folder RUN (its curves.csv and summary.json) recomputed into the folder OUT, with today's target
    definition or ``--target-loss``. RUN is only read."""
    import argparse
    import json
    import sys

    from simulations.arguments import whole

    parser = argparse.ArgumentParser(prog="python -m simulations.figure7", description=main.__doc__)
    parser.add_argument("run", type=Path, help="a fedvst simulate --out folder (curves.csv, summary.json)")
    parser.add_argument("out", type=Path, help="folder for the recomputed summary.json and figure7.png")
    parser.add_argument("--target-loss", type=float, default=None)
    parser.add_argument("--smoothing", type=whole(1, 1000), default=None, help="default: the run's own")
    args = parser.parse_args(argv)
    if args.out.resolve() == args.run.resolve():
        parser.error("OUT must be another folder than RUN (RUN is only read)")
    try:
        rows = read_rows(args.run / "curves.csv")
        summary = json.loads((args.run / "summary.json").read_text())
        if not isinstance(summary, dict):
            raise ValueError(f"{args.run / 'summary.json'} is not a simulate summary (a JSON object)")
        window = args.smoothing or max(1, int(summary.get("smoothing_rounds", 3)))
    except (OSError, ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = resummarise(rows, summary, window, args.target_loss)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(result, indent=1))
    plot(rows, args.out / "figure7.png", window, result["target_loss"])
    print(json.dumps({n: r["per_seed"] for n, r in result["images_to_target"].items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
