"""The colour projection: the affine head's output keeps the prior's RGB mean and covariance.

With ``colour_projection`` the learned residual may move local contrast and texture, but one global
affine map composed into every cell carries the output's colour moments (on the reference copy the
prior is fitted on) back onto the prior's output's, in training and at inference.
"""

import pytest
import torch

from stylizer import PairSampler, StylizerConfig, build_model, make_optimizer, train_step
from stylizer.colour_prior import apply_global, colour_moments, projection_transform
from stylizer.images import to_tensor
from stylizer.render_torch import render_field
from stylizer.training import compute_losses, resize


def _apply(transform: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("nij,njhw->nihw", transform[:, :, :3], image) + transform[:, :, 3, None, None]


def test_the_projection_carries_one_pictures_moments_onto_anothers(photos):
    source = to_tensor(photos["astronaut"]).double()
    target = to_tensor(photos["coffee"]).double()
    transform = projection_transform(*colour_moments(source), *colour_moments(target))
    mean, cov = colour_moments(_apply(transform, source))
    target_mean, target_cov = colour_moments(target)
    assert torch.allclose(mean, target_mean, atol=1e-9)
    assert torch.allclose(cov, target_cov, atol=2e-5)  # the floor added to both diagonals
    same = projection_transform(*colour_moments(source), *colour_moments(source))
    assert torch.allclose(same, torch.cat([torch.eye(3), torch.zeros(3, 1)], 1)[None].double(), atol=1e-9)


def test_the_projection_keeps_a_finite_gradient_on_a_grey_picture_and_refuses_nan(photos):
    grey = to_tensor(photos["astronaut"]).mean(1, keepdim=True).expand(1, 3, -1, -1).double().clone()
    grey.requires_grad_(True)
    transform = projection_transform(*colour_moments(grey), *colour_moments(to_tensor(photos["coffee"])))
    transform.sum().backward()
    assert bool(torch.isfinite(grey.grad).all()) and float(grey.grad.abs().max()) > 0
    nan = torch.full((1, 3), float("nan"))
    identity = projection_transform(nan, torch.eye(3)[None], torch.zeros(1, 3), torch.eye(3)[None])
    assert torch.equal(identity, torch.cat([torch.eye(3), torch.zeros(3, 1)], 1)[None].double())


def _trained_a_little(encoder_weights, photos, projection: bool):
    torch.manual_seed(0)
    config = StylizerConfig(decoder_width=0.25, matrix_dim=16, loss_layer="relu4_1", style_weight=4.0,
                            colour_weight=0.0, colour_projection=projection, colour_guard=False)
    model = build_model(config, encoder_weights)
    sampler = PairSampler([photos["astronaut"], photos["rocket"]], [photos["coffee"]], base_size=48,
                          scales=(2.0, 2.0), seed=5)
    optimizer = make_optimizer(model, lr=3e-3)
    for _ in range(6):  # a large rate: the residual moves far from zero in a few steps
        train_step(model, sampler.sample(2), optimizer)
    return model.eval()


def test_the_output_keeps_the_priors_colour_moments_and_the_residual_still_acts(encoder_weights, photos):
    content = to_tensor(photos["chelsea"])  # held out: never trained on
    small, reference = resize(content, (96, 128)), resize(content, (192, 256))
    gaps = {}
    for projection in (False, True):
        model = _trained_a_little(encoder_weights, photos, projection)
        code = model.style_code(to_tensor(photos["coffee"]))
        with torch.no_grad():
            field = model.field(small, code, 2.0, reference)
            prior = apply_global(reference, model.prior(reference, code))
            output = render_field(field, reference)
        mean, cov = colour_moments(output)
        prior_mean, prior_cov = colour_moments(prior)
        gaps[projection] = (float((mean - prior_mean).abs().max()), float((cov - prior_cov).abs().max()))
        assert float((output - prior).abs().max()) > 0.02  # the learned part still changes the picture
    assert gaps[False][0] > 0.02 and gaps[False][1] > 2e-3  # unprojected, training moved the colour moments
    # projected, they are the prior's but for what clipping at 0 and 1 leaves (measured: 0.03× and 0.15×)
    assert gaps[True][0] < 0.1 * gaps[False][0] and gaps[True][1] < 0.3 * gaps[False][1]


def test_a_training_step_through_the_projection_gives_finite_gradients(encoder_weights, photos):
    torch.manual_seed(0)
    model = build_model(StylizerConfig(decoder_width=0.25, matrix_dim=16, colour_projection=True), encoder_weights)
    batch = PairSampler([photos["astronaut"]], [photos["coffee"]], base_size=48, scales=(2.0, 2.0), seed=1).sample(2)
    model.train()
    compute_losses(model, batch).objective.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads)
    assert max(float(g.abs().max()) for g in grads) > 0


def test_an_unknown_or_shape_changing_override_is_refused_in_one_line(tmp_path):
    from fedvst.train_command import TrainSettings, check_settings

    for bad, message in (({"grid_stride": 4}, "cannot override"), ({"no_such_field": 1}, "cannot override"),
                         ({"colour_projection": "yes"}, "override refused"),
                         ({"style_from": "relu9"}, "override refused")):
        settings = TrainSettings(tmp_path, tmp_path, 1, tmp_path / "m.safetensors", overrides=bad)
        with pytest.raises(ValueError, match=message) as error:
            check_settings(settings)
        assert "\n" not in str(error.value)
    check_settings(TrainSettings(tmp_path, tmp_path, 1, tmp_path / "m.safetensors",
                                 overrides={"colour_projection": True, "style_from": "", "colour_weight": 0}))
