import math

import pytest
import torch
import torch.nn.functional as F

from stylizer.meta_smoothing import MetaSmoothing, output_size


@pytest.fixture()
def module():
    torch.manual_seed(1)
    m = MetaSmoothing(upsample_channels=6, kernel_size=5)
    with torch.no_grad():  # make every weight matter, not just the identity initialisation
        m.meta_kernel.normal_(0, 0.2)
        m.meta_bias.normal_(0, 0.1)
        m.smooth.weight.normal_(0, 0.2)
        m.scale_net[2].weight.normal_(0, 0.5)
    return m


@pytest.mark.parametrize("r", [1, 1.5, 2, 3.75])
@pytest.mark.parametrize("hw", [(37, 51), (17, 23), (32, 32)])
def test_output_size_is_exact(module, r, hw):
    x = torch.rand(2, 3, *hw)
    size = output_size(*hw, r)
    assert size == (round(r * hw[0]), round(r * hw[1]))
    assert module(x, size).shape == (2, 3, *size)


def test_r_equal_one_is_plain_convolution(module):
    x = torch.rand(1, 3, 21, 29)
    expected = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), module.meta_kernel, module.meta_bias)
    expected = module.smooth(F.pad(expected, (2, 2, 2, 2), mode="reflect"))
    assert torch.equal(module.scale_gain(1.0), torch.ones(6))
    torch.testing.assert_close(module(x, (21, 29)), expected, rtol=0, atol=0)


@pytest.mark.parametrize("r", [2, 3])
def test_integer_r_is_strided_transposed_convolution(module, r):
    x = torch.rand(1, 3, 16, 18, dtype=torch.float64)
    module = module.double()
    pad = 2
    upsampled = F.interpolate(
        F.conv2d(F.pad(x, (pad,) * 4, mode="replicate"), module.scaled_meta_kernel(float(r)), module.meta_bias),
        size=(16 * r, 18 * r), mode="bilinear", align_corners=False)
    kernel, p = module.transposed_kernel(r)
    full = F.conv_transpose2d(x, kernel, module.meta_bias, stride=r)
    transposed = full[..., p:p + 16 * r, p:p + 18 * r]
    margin = 4 * r  # the border is replicated in one and zero-extended in the other
    inner = (..., slice(margin, -margin), slice(margin, -margin))
    torch.testing.assert_close(transposed[inner], upsampled[inner], rtol=1e-9, atol=1e-9)


def test_scale_gain_depends_on_r(module):
    assert not torch.allclose(module.scale_gain(2.0), module.scale_gain(3.0))


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf])
def test_bad_scale_factor_is_refused(bad):
    with pytest.raises(ValueError, match="scale factor"):
        output_size(10, 10, bad)
