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


def test_a_slideshow_is_one_frame_per_photo_each_its_centre_at_4_by_3(tmp_path):
    """``--slideshow``: the round's photos in one phone video, in order, none stretched."""
    import numpy as np
    from PIL import Image

    from fedvst.video.io import probe, read_frames

    wide = np.zeros((100, 300, 3), np.uint8)
    wide[:, 100:200] = (200, 40, 40)  # a red middle third: all a 4:3 centre crop of a 3:1 picture keeps
    tall = np.full((300, 120, 3), (40, 40, 200), np.uint8)
    paths = []
    for name, pixels in (("wide.png", wide), ("tall.png", tall)):
        Image.fromarray(pixels).save(tmp_path / name)
        paths.append(tmp_path / name)
    clip = bench_learning.photo_slideshow(paths, tmp_path / "slides.mp4")
    info = probe(clip)
    assert (info.height, info.width) == bench_learning.SLIDESHOW_SIZE
    frames = [frame.image.astype(int) for frame in read_frames(clip)]
    assert len(frames) == 2
    assert np.abs(frames[0][:, 60:-60] - (200, 40, 40)).mean() < 8  # the red centre fills the frame's middle
    assert np.abs(frames[1] - (40, 40, 200)).mean() < 8


def test_a_style_bank_is_a_seeded_choice_of_the_training_colour_photos(tmp_path, monkeypatch):
    """``--style-bank-photos N``: N distinct training colour photos, shrunk, the same for a seed."""
    import numpy as np
    from PIL import Image

    photos = []
    for i in range(6):  # two of them with one file name, as two corpus packages may have
        (tmp_path / f"pkg{i % 2}").mkdir(exist_ok=True)
        path = tmp_path / f"pkg{i % 2}" / f"style{i // 2 if i < 2 else i}.png"
        Image.fromarray(np.full((900, 1200, 3), (40 * i, 80, 200 - 30 * i), np.uint8)).save(path)
        photos.append(path)
    monkeypatch.setattr(bench_learning, "colour_training_photos", lambda: tuple(photos))
    first = bench_learning.write_style_bank(tmp_path / "bank0", 4, seed=0)
    names = sorted(p.name for p in first.iterdir())
    assert len(names) == 4 and {n.removesuffix(".png").split("_", 1)[1] for n in names} <= {p.stem for p in photos}
    assert sorted(p.name for p in bench_learning.write_style_bank(tmp_path / "again", 4, seed=0).iterdir()) == names
    assert max(Image.open(first / names[0]).size) == bench_learning.PHOTO_SIDE
    every = sorted(p.name for p in bench_learning.write_style_bank(tmp_path / "all", 6, seed=0).iterdir())
    assert len(every) == 6  # "style0.png" of both packages kept
