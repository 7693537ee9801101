import pytest
import torch

from stylizer.colorization import WhiteningColoring


def test_wct_gives_content_the_style_covariance():
    torch.manual_seed(0)
    wct = WhiteningColoring()
    content = torch.randn(1, 8, 20, 20)
    mix = torch.randn(8, 8)
    style = (mix @ torch.randn(1, 8, 400)).reshape(1, 8, 20, 20) + 3.0
    out = wct(content, wct.style_code(style)).double().reshape(8, -1)
    target = style.double().reshape(8, -1)
    torch.testing.assert_close(torch.cov(out), torch.cov(target), rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(out.mean(1), target.mean(1), rtol=1e-6, atol=1e-6)


def test_wct_refuses_fewer_than_two_pixels():
    wct = WhiteningColoring()
    with pytest.raises(ValueError, match="fewer than 2 pixels"):
        wct.style_code(torch.randn(1, 8, 1, 1))


def test_wct_survives_a_flat_style():
    wct = WhiteningColoring()
    out = wct(torch.randn(1, 4, 6, 6), wct.style_code(torch.zeros(1, 4, 6, 6)))
    assert torch.isfinite(out).all()
