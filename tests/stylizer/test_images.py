import numpy as np
import pytest
import torch
from PIL import Image

from stylizer import ImageError, Stylizer, load_image
from stylizer.images import as_rgb_uint8, image_files


def test_corrupt_image_file(tmp_path):
    bad = tmp_path / "style.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(ImageError, match="not a readable image"):
        load_image(bad, "style image")
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    with pytest.raises(ImageError, match="not a readable image"):
        load_image(text)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "nope.png")


def test_oversized_file_is_refused_before_decoding(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("L", (8193, 1)).save(path)
    with pytest.raises(ImageError, match="over 8192 px"):
        load_image(path)


@pytest.mark.parametrize("shape", [(0, 10, 3), (10, 0, 3), (0, 0)])
def test_zero_size_arrays(shape):
    with pytest.raises(ImageError, match="empty"):
        as_rgb_uint8(np.zeros(shape, np.uint8))


def test_oversized_array():
    with pytest.raises(ImageError, match="over 8192"):
        as_rgb_uint8(np.zeros((2, 8193, 3), np.uint8))


def test_gray_and_rgba_are_converted(tmp_path):
    gray = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30)
    rgb = as_rgb_uint8(gray)
    assert rgb.shape == (20, 30, 3) and (rgb[..., 0] == gray).all() and (rgb[..., 2] == gray).all()
    rgba = np.dstack([rgb, np.full((20, 30), 7, np.uint8)])
    assert (as_rgb_uint8(rgba) == rgb).all()
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png").shape == (20, 30, 3)
    Image.fromarray(gray).save(tmp_path / "g.png")
    assert (load_image(tmp_path / "g.png")[..., 1] == gray).all()


def test_bad_arrays():
    with pytest.raises(ImageError, match="NaN"):
        as_rgb_uint8(np.full((4, 4, 3), np.nan, np.float32))
    with pytest.raises(ImageError, match="channels"):
        as_rgb_uint8(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageError, match="dtype"):
        as_rgb_uint8(np.zeros((4, 4, 3), np.int64))


def test_stylizer_rejects_bad_inputs_with_clear_errors(small_model, photos):
    stylizer = Stylizer(small_model, device="cpu", precision="fp32")
    content = photos["astronaut"][:64, :64]
    with pytest.raises(ImageError, match="empty"):
        stylizer.stylize(content, np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ImageError, match="NaN"):
        stylizer.stylize(torch.full((1, 3, 32, 32), float("nan")), content)
    with pytest.raises(ValueError, match="too small"):
        stylizer.stylize(content[:8, :8], content)
    with pytest.raises(ImageError, match="over 8192"):
        stylizer.stylize(content, content, r=200.0)


def test_16_bit_grey_is_scaled_not_clipped(tmp_path):
    """Case 8: a 16-bit grey PNG was clipped to 0/255 (PIL's 'I;16' → 'RGB' conversion)."""
    import io

    from stylizer.images import decode_image_bytes

    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, format="PNG")
    (tmp_path / "deep.png").write_bytes(buffer.getvalue())
    for image in (decode_image_bytes(buffer.getvalue()), load_image(tmp_path / "deep.png")):
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        expected = np.round(ramp / 257.0)
        assert np.abs(image[:, :, 0].astype(int) - expected).max() <= 1
        assert len(np.unique(image)) > 200  # a ramp, not two levels


def test_image_files_lists_pictures_by_name_and_nothing_for_a_missing_folder(tmp_path):
    for name in ("b.JPG", "a.png", "notes.txt", "c.webp"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "d.png").mkdir()  # a folder named like a picture is not a picture
    assert [p.name for p in image_files(tmp_path)] == ["a.png", "b.JPG", "c.webp"]
    assert image_files(tmp_path / "missing") == []
