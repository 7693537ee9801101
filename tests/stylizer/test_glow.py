"""The glow term: a field's change from cell to cell, as the smooth pixels' colours see it."""

import numpy as np
import pytest
import torch

from stylizer.field import COEFFICIENTS
from stylizer.images import to_tensor
from stylizer.losses import field_smoothness, glow

IDENTITY = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0])


def field_of(cells: list[list[torch.Tensor]]) -> torch.Tensor:
    """(1, 12, gh, gw) from a gh × gw list of (12,) transforms."""
    return torch.stack([torch.stack(row, dim=-1) for row in cells], dim=-2)[None]


def test_one_transform_everywhere_paints_no_glow(photos):
    image = to_tensor(photos["astronaut"])[..., :96, :128]
    cast = IDENTITY * 0.9 + torch.tensor([0.0, 0.0, 0.0, 0.05] * 3)
    assert float(glow(cast.view(1, COEFFICIENTS, 1, 1).expand(1, -1, 6, 8), image)) == pytest.approx(0.0, abs=1e-9)


def test_a_white_wall_painted_magenta_then_lime_glows_and_a_change_white_cannot_see_does_not():
    wall = torch.full((1, 3, 64, 96), 0.9)  # a smooth, bright surface spanning every cell
    magenta = IDENTITY + torch.tensor([0.1, 0, 0, 0, 0, -0.1, 0, 0, 0, 0, 0.1, 0])
    lime = IDENTITY + torch.tensor([-0.05, 0, 0, 0, 0, 0.1, 0, 0, 0, 0, -0.05, 0])
    # gains that trade red for green in each row: their row sums, all that white sees, are the identity's
    unseen = IDENTITY + torch.tensor([0.2, -0.2, 0, 0, 0.1, -0.1, 0, 0, -0.2, 0.2, 0, 0])
    painted = field_of([[magenta, lime, magenta], [lime, magenta, lime]])
    shuffled = field_of([[IDENTITY, unseen, IDENTITY], [unseen, IDENTITY, unseen]])
    assert float(glow(painted, wall)) > 1e-3
    assert float(glow(shuffled, wall)) < 1e-10
    assert float(field_smoothness(shuffled, wall)) > 1e-3  # where the cell-to-cell smoothness sees a change


def test_texture_hides_what_a_smooth_surface_shows():
    rng = np.random.default_rng(0)
    smooth = torch.full((1, 3, 64, 96), 0.5)
    textured = torch.from_numpy(rng.uniform(0.2, 0.8, (1, 1, 64, 96)).astype(np.float32)).expand(1, 3, -1, -1)
    stripes = field_of([[IDENTITY + 0.1 * (c % 2) * torch.tensor([1.0, 0, 0, 0] * 3) for c in range(3)]] * 2)
    assert float(glow(stripes, textured)) < 0.05 * float(glow(stripes, smooth))


def test_the_glow_weight_adds_to_the_regulariser_with_a_gradient_to_the_head(encoder_weights, photos):
    from stylizer import PairSampler, StylizerConfig, build_model
    from stylizer.training import compute_losses

    batch = PairSampler([photos["astronaut"]], [photos["coffee"]], base_size=48, scales=(2.0, 2.0), seed=1).sample(2)
    objectives = {}
    for weight in (0.0, 1e8):
        torch.manual_seed(0)
        model = build_model(StylizerConfig(decoder_width=0.25, matrix_dim=16, glow_weight=weight,
                                           flat_contrast=0.0), encoder_weights)
        with torch.no_grad():  # a residual that varies over the picture, as a trained one does
            model.decoder.head.weight.normal_(0, 0.05)
        model.train()
        terms = compute_losses(model, batch)
        objectives[weight] = terms
        if weight:
            model.decoder.head.weight.grad = None
            terms.regularizer.backward()
            assert float(model.decoder.head.weight.grad.abs().max()) > 0.0
    assert float(objectives[1e8].regularizer.detach()) > float(objectives[0.0].regularizer.detach())
    # Eq. 5 (what the held-out total scores) is unchanged: the glow is a regulariser only
    assert float(objectives[1e8].total.detach()) == pytest.approx(float(objectives[0.0].total.detach()), rel=1e-6)
