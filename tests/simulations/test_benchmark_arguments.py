"""Benchmarks refuse settings no run could use in one line, before starting anything."""

import sys

import pytest

from simulations.arguments import seconds, weight, whole


@pytest.mark.parametrize(("module", "args", "message"), [
    ("bench_learning", ["--rounds", "0"], "argument --rounds: must be 1–12, got 0"),
    ("bench_learning", ["--images-per-round", "0"], "argument --images-per-round: must be 1–100000, got 0"),
    ("bench_learning", ["--poll-s", "-1"], "argument --poll-s: must be above 0 and at most 3600 s, got -1"),
    ("bench_learning", ["--figure", "rounds.gif"], "--figure rounds.gif: give a file name ending in .png or .jpg"),
    ("bench_learning", ["--seed", "-1"], "argument --seed: must be 0–1000000, got -1"),
    ("bench_learning", ["--rescore", "nowhere"], "pass the folder an earlier run was given with --keep"),
    ("bench_learning", ["--media", "samples", "--slideshow"], "leave them out with --media samples"),
    ("bench_learning", ["--glow-weight", "1e8"], "the image head has no field to glow)"),
    ("bench_learning", ["--neutral-residual", "none"], "has no residual)"),
    ("bench_learning", ["--fresh-head", "image", "--glow-weight", "1e8"], "pass --fresh-head affine (the built-in "
     "and 'builtin' carry their own; the image head has no field to glow)"),
    ("bench_learning", ["--fresh-head", "affine", "--glow-weight", "nan"],
     "argument --glow-weight: must be at least 0 and below 1e+09, got nan"),
    ("bench_federation", ["--frames", "many"], "argument --frames: must be a whole number, got 'many'"),
    ("bench_keyframes", ["--frames", "1"], "argument --frames: must be 2–10000, got 1"),
    ("bench_keyframes", ["--styles", "0"], "argument --styles: must be 1–8, got 0"),
])
def test_a_benchmark_refuses_a_setting_in_one_line_before_starting(tmp_path, module, args, message, monkeypatch,
                                                                   capsys):
    import importlib

    bench = importlib.import_module(f"simulations.{module}")
    keep = ["--keep", str(tmp_path / "run")] if module == "bench_learning" else []
    monkeypatch.setattr(sys, "argv", [f"{module}.py", *args, *keep])
    with pytest.raises(SystemExit) as exited:
        bench.main()  # argparse refuses before main starts anything
    said = capsys.readouterr()
    assert exited.value.code == 2 and said.out == ""
    assert said.err.strip().splitlines()[-1].endswith(message), said.err
    assert not (tmp_path / "run").exists()


def test_the_argument_types_take_their_range_and_nothing_else():
    import argparse

    assert whole(1, 3)("3") == 3 and seconds(0, 10)("0.5") == 0.5 and weight(1e9)("1e8") == 1e8
    for parse, text in ((whole(1, 3), "4"), (whole(1), "0"), (whole(1), "1.5"), (seconds(0, 10), "0"),
                        (seconds(0, 10), "nan"), (seconds(0, 10), "11"), (weight(1e9), "-1"), (weight(1e9), "inf"),
                        (weight(1e9), "1e9"), (weight(1e9), "heavy")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)
