"""The colour statistics of a field's output in one CPU pass (``stylizer.field_stats``): the numbers the
torch path (render, then measure) gives, so the colour guard and projection decide alike on either."""

import numpy as np
import pytest
import torch

from stylizer.colour_prior import colour_moments
from stylizer.feature_regions import STD_EPS
from stylizer.field import identity_field
from stylizer.field_stats import guard_lab_stats, output_moments
from stylizer.images import to_tensor
from stylizer.losses import lab_mean_std
from stylizer.model import GUARD_SHARES
from stylizer.model import guard_lab_stats as model_guard_lab_stats
from stylizer.model import output_moments as model_output_moments
from stylizer.render_torch import from_colour_field, render_field

IDENTITY = from_colour_field(identity_field())  # (1, 12, 1, 1)


def _picture(photos: dict, name: str, size: tuple[int, int] = (72, 100)) -> torch.Tensor:
    """(1, 3, H, W) float in [0, 1]: a real photo, an odd size so no cell divides it evenly."""
    from stylizer.training import resize

    return resize(to_tensor(photos[name]), size)


def _field(seed: int, grid: tuple[int, int] = (5, 7), spread: float = 0.4) -> torch.Tensor:
    """(1, 12, gh, gw): near the identity, far enough that many pixels clip at 0 or 1."""
    generator = torch.Generator().manual_seed(seed)
    return IDENTITY + spread * torch.randn(1, 12, *grid, generator=generator)


def _cells(field: torch.Tensor) -> np.ndarray:
    return field[0].permute(1, 2, 0).numpy()


def test_output_moments_are_those_of_the_rendered_and_clamped_output(photos):
    image = _picture(photos, "astronaut")
    for seed, grid in ((0, (5, 7)), (1, (1, 1)), (2, (9, 16))):
        field = _field(seed, grid)
        output = render_field(field, image)
        assert float(((output == 0) | (output == 1)).float().mean()) > 0.02  # the clamp matters here
        mean, cov = output_moments(image[0].numpy(), _cells(field))
        want_mean, want_cov = colour_moments(output)
        assert np.abs(mean - want_mean[0].numpy()).max() < 1e-6
        assert np.abs(cov - want_cov[0].numpy()).max() < 1e-6


def test_guard_statistics_are_lab_mean_std_of_the_picture_the_base_and_each_share(photos):
    image = _picture(photos, "coffee")
    base = IDENTITY + 0.05 * torch.randn(1, 12, 1, 1, generator=torch.Generator().manual_seed(3))
    change = _field(4) - IDENTITY
    shares = np.array([1.0, 0.5, 0.25], dtype=np.float32)
    stats = guard_lab_stats(image[0].numpy(), np.broadcast_to(_cells(base), _cells(change).shape), _cells(change),
                            shares, STD_EPS)
    renders = [image, render_field(base, image)] + [render_field(base + float(a) * change, image) for a in shares]
    want = torch.cat([lab_mean_std(render) for render in renders]).double().numpy()
    assert stats.shape == (5, 6)
    assert np.abs(stats - want).max() < 1e-5  # the CIELAB curves are read from tables
    with pytest.raises(ValueError, match="one grid"):
        guard_lab_stats(image[0].numpy(), _cells(base), _cells(change), shares, STD_EPS)


def test_the_model_takes_the_cpu_pass_without_gradients_and_torch_with_them(photos):
    """Both paths of ``stylizer.model.output_moments`` and ``guard_lab_stats`` agree; with a gradient
    wanted the torch path runs (training differentiates the projection through the moments)."""
    image = torch.cat([_picture(photos, "astronaut"), _picture(photos, "rocket")])
    field = torch.cat([_field(5), _field(6)])
    with torch.no_grad():
        fast_mean, fast_cov = model_output_moments(field, image)
    wanting = field.clone().requires_grad_()
    mean, cov = model_output_moments(wanting, image)
    assert cov.requires_grad  # the torch path
    assert torch.allclose(fast_mean, mean.detach(), atol=1e-6) and torch.allclose(fast_cov, cov.detach(), atol=1e-6)

    base = IDENTITY.expand(2, -1, -1, -1)
    with torch.no_grad():
        fast = model_guard_lab_stats(image, base, field - base)
    assert fast.shape == (2 + len(GUARD_SHARES), 2, 6)
    with torch.enable_grad():
        slow = model_guard_lab_stats(image, base, (field - base).requires_grad_())
    assert torch.allclose(fast, slow.detach(), atol=1e-5)


def test_a_bilateral_field_is_measured_in_torch(photos):
    """Depth > 1 fields slice along luma too, which the CPU pass does not: they keep the torch path."""
    image = _picture(photos, "chelsea")
    generator = torch.Generator().manual_seed(7)
    field = IDENTITY.repeat(1, 2, 1, 1) + 0.1 * torch.randn(1, 24, 4, 5, generator=generator)
    with torch.no_grad():
        mean, cov = model_output_moments(field, image)
        want_mean, want_cov = colour_moments(render_field(field, image))
    assert torch.equal(mean, want_mean) and torch.equal(cov, want_cov)
