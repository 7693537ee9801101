"""bench_learning's phones: which corpus stretches, photos and styles each round shares."""

from pathlib import Path

import pytest

from simulations import bench_learning


@pytest.fixture
def small_corpus(monkeypatch):
    """A stand-in training split: 10 clip stretches, 80 photos, 12 colour photos (no files read)."""
    import fedvst.corpus

    stretches = [(Path(f"clip{i % 3}.mp4"), 48 * i, 48 * (i + 1)) for i in range(10)]
    monkeypatch.setattr(bench_learning, "clip_stretches", lambda frames: list(stretches))
    monkeypatch.setattr(fedvst.corpus, "corpus_files", lambda kind, split: [Path(f"photo{i}.jpg") for i in range(80)])
    monkeypatch.setattr(bench_learning, "colour_training_photos", lambda: [Path(f"style{i}.jpg") for i in range(12)])
    return stretches


def _flat(shares):
    return [share for per_edge in shares for share in per_edge]


def test_seed_0_takes_the_stretches_in_turn_and_a_seed_changes_the_shares_but_never_repeats(small_corpus):
    first = _flat(bench_learning.corpus_shots(4, seed=0))
    assert [(s["clip"], s["start"], s["stop"]) for s in first] == small_corpus[:8]
    assert _flat(bench_learning.corpus_shots(4, seed=0)) == first  # seeded: the same shares again
    other = _flat(bench_learning.corpus_shots(4, seed=1))
    assert [(s["clip"], s["start"]) for s in other] != [(s["clip"], s["start"]) for s in first]
    assert [s["photos"] for s in other] != [s["photos"] for s in first]
    for shares in (first, other):
        stretches = [(s["clip"], s["start"]) for s in shares]
        photos = [p for s in shares for p in s["photos"]]
        assert len(set(stretches)) == len(stretches) and len(set(photos)) == len(photos) == 8 * 8


def test_too_few_shots_for_the_rounds_is_one_clear_error(small_corpus):
    with pytest.raises(ValueError, match="ask for fewer --rounds"):
        bench_learning.corpus_shots(6, seed=3)  # 12 shots needed, 10 stretches
