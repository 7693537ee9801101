import numpy as np
import pytest
import torch

from stylizer import Stylizer, builtin_checkpoint_path, load_model


def test_style_is_computed_once_and_cached(small_model, photos, monkeypatch):
    stylizer = Stylizer(small_model, device="cpu", precision="fp32")
    calls = []
    original = small_model.style_code
    monkeypatch.setattr(small_model, "style_code", lambda s: calls.append(1) or original(s))
    content = photos["astronaut"][:96, :128]
    a = stylizer.stylize(content, photos["coffee"])
    b = stylizer.stylize(content, photos["coffee"].copy())
    assert len(calls) == 1
    assert np.array_equal(a, b) and a.shape == (96, 128, 3) and a.dtype == np.uint8
    handle = stylizer.add_style(photos["coffee"])
    assert np.array_equal(stylizer.stylize(content, handle), a)
    assert stylizer.add_style(photos["coffee"], handle) == handle and len(calls) == 1  # known handle: no work
    with pytest.raises(KeyError, match="unknown style handle"):
        stylizer.stylize(content, "0" * 64)


def test_tensor_in_tensor_out_and_exact_size(small_model, photos):
    stylizer = Stylizer(small_model, device="cpu", precision="fp32")
    content = torch.rand(2, 3, 45, 61)
    out = stylizer.stylize(content, photos["rocket"], r=1.5)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 68, 92)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_stylize_frame_runs_small_and_upscales(small_model, photos):
    stylizer = Stylizer(small_model, device="cpu", precision="fp32")
    frame = photos["astronaut"][:300, :500]
    out = stylizer.stylize_frame(frame, photos["coffee"], size=(541, 901), work_width=128)
    assert out.shape == (541, 901, 3)


def test_bf16_is_close_to_fp32(small_model, photos):
    content = photos["chelsea"][:64, :96]
    exact = Stylizer(small_model, device="cpu", precision="fp32").stylize(content, photos["coffee"])
    fast = Stylizer(small_model, device="cpu", precision="bf16").stylize(content, photos["coffee"])
    assert np.abs(exact.astype(int) - fast.astype(int)).mean() < 6


@pytest.mark.skipif(not builtin_checkpoint_path().exists(), reason="built-in checkpoint not built")
def test_builtin_model_loads_and_stylizes(photos):
    model, checkpoint = load_model()
    assert checkpoint.metadata["encoder"]["identity"].startswith(("seeded:", "sha256:"))
    out = Stylizer(model, device="cpu").stylize_frame(photos["astronaut"], photos["coffee"], size=(256, 256))
    assert out.shape == (256, 256, 3) and out.std() > 5


def test_device_names_other_than_auto_cpu_and_cuda_are_refused_in_one_line(monkeypatch):
    from stylizer.device import pick_device

    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("FEDVST_DEVICE", "cpu")
    assert pick_device(None) == torch.device("cpu")
    for name in ("tpu", "mps", "cpu0"):
        monkeypatch.setenv("FEDVST_DEVICE", name)
        with pytest.raises(ValueError, match="auto, cpu, cuda or cuda:N"):
            pick_device(None)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda:1")


def test_strength_blends_the_style_toward_the_unchanged_frame(small_model, photos):
    """--strength: 0 leaves the frame as it is, 1 is the full style, and in between the render is the
    blend of the two (the field toward the identity, linear before the clamp); nonsense is refused."""
    from stylizer import ColourField
    from stylizer.field import identity_field

    frame = np.ascontiguousarray(photos["astronaut"][::4, ::4])
    stylizer = Stylizer(small_model, device="cpu", precision="fp32")
    full = stylizer.stylize_frame(frame, photos["coffee"]).astype(np.float32)
    none = stylizer.stylize_frame(frame, photos["coffee"], strength=0.0).astype(np.float32)
    half = stylizer.stylize_frame(frame, photos["coffee"], strength=0.5).astype(np.float32)
    assert np.abs(none - frame).max() <= 1
    assert np.abs(full - frame).mean() > 10  # the style does change it
    unclamped = (full > 0) & (full < 255)
    assert np.abs(half - 0.5 * (full + frame))[unclamped].max() <= 1.5
    field = stylizer.colour_field(frame, photos["coffee"], frame.shape[:2])
    assert np.array_equal(field.toward_identity(0.0).coefficients, identity_field(field.grid).coefficients)
    assert field.toward_identity(1.0) is field and isinstance(field.toward_identity(0.3), ColourField)
    for bad in (1.01, -0.5, float("nan"), True):
        with pytest.raises(ValueError, match="strength must be a number in"):
            stylizer.stylize_frame(frame, photos["coffee"], strength=bad)
