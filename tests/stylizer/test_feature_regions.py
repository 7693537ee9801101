"""The per-region style term: feature clusters matched between content and style.

With one region it is Eq. 5's style term; with more it compares each content region's output
statistics with the matched style region's, which the global term cannot tell apart from a picture
that puts the style's colours in the wrong places.
"""

import pytest
import torch

from stylizer import PairSampler, StylizerConfig, build_model, make_optimizer, train_step
from stylizer.feature_regions import cluster_features, match_regions, region_mean_std, region_style_distance
from stylizer.images import to_tensor
from stylizer.losses import perceptual_loss


def _two_part(first: torch.Tensor, second: torch.Tensor, split: int, height: int = 8, width: int = 12) -> torch.Tensor:
    """(1, C, height, width) features: columns < split hold ``first`` (C,), the rest ``second``."""
    features = second[None, :, None, None].expand(1, -1, height, width).clone()
    features[..., :split] = first[None, :, None, None]
    return features


def test_clusters_follow_what_the_features_describe_and_are_deterministic():
    torch.manual_seed(0)
    sky, street = torch.rand(16), torch.rand(16)
    features = _two_part(sky, street, 5) * (1 + 0.05 * torch.rand(1, 1, 8, 12))  # brightness varies, not kind
    labels, centres = cluster_features(features, 2)
    assert labels.shape == (1, 8, 12) and centres.shape == (1, 2, 16)
    assert len(set(labels[0, :, :5].flatten().tolist())) == 1
    assert len(set(labels[0, :, 5:].flatten().tolist())) == 1
    assert labels[0, 0, 0] != labels[0, 0, -1]
    again, _ = cluster_features(features, 2)
    assert torch.equal(labels, again)
    with pytest.raises(ValueError, match="regions"):
        cluster_features(features, 0)


def test_each_content_region_meets_the_most_alike_style_region_never_a_sliver():
    torch.manual_seed(1)
    sky, street = torch.rand(16), torch.rand(16)
    content = _two_part(sky, street, 4)
    style = _two_part(street, sky, 9)  # the other way round, street on the left
    content_labels, content_centres = cluster_features(content, 2)
    style_labels, style_centres = cluster_features(style, 2)
    match = match_regions(content_centres, style_centres, style_labels)
    content_sky, style_sky = int(content_labels[0, 0, 0]), int(style_labels[0, 0, -1])
    assert int(match[0, content_sky]) == style_sky
    assert int(match[0, 1 - content_sky]) == 1 - style_sky
    # A style whose only sky-like positions are a sliver (1 of 96): the content's sky meets the street.
    sliver = _two_part(street, street, 0)
    sliver[..., 0, 0] = sky
    sliver_labels, sliver_centres = cluster_features(sliver, 2)
    assert sorted(torch.bincount(sliver_labels.flatten(), minlength=2).tolist()) == [1, 95]
    street_label = int(sliver_labels[0, 4, 6])
    assert match_regions(content_centres, sliver_centres, sliver_labels)[0].tolist() == [street_label] * 2


def test_one_region_is_eq5s_style_term(encoder_weights, photos):
    from stylizer.factory import build_encoder

    encoder = build_encoder("relu3_1", encoder_weights)
    content = to_tensor(photos["coffee"][:96, :128])
    style = to_tensor(photos["astronaut"][:80, :80])
    output = content.flip(-1) * 0.8
    whole = perceptual_loss(encoder, output, content, style, regions=1)
    with torch.no_grad():
        by_region = region_style_distance(encoder(output), encoder.deepest(content), encoder(style), encoder.taps, 1)
    assert float(by_region) == pytest.approx(float(whole.style), rel=1e-4)
    split = perceptual_loss(encoder, output, content, style, regions=3)
    assert float(split.content) == pytest.approx(float(whole.content))
    assert float(split.style) != pytest.approx(float(whole.style), rel=1e-3)


def test_the_regional_term_sees_colours_in_the_wrong_place_the_global_one_does_not():
    blue, grey = torch.tensor([0.2, 0.4, 0.9]), torch.tensor([0.5, 0.5, 0.5])
    style = {"relu4_1": _two_part(blue, grey, 6)}  # the style's sky (left) is blue, its street grey
    content_deepest = _two_part(blue * 0.7, grey * 1.2, 6)  # the content's sky on the left too (the regions
    # come from the deepest tap given: here one tap, whose features stand for sky and street)
    right = _two_part(blue, grey, 6)
    wrong = _two_part(grey, blue, 6)  # the same colours, the other way round

    def distance(output: torch.Tensor, regions: int) -> float:
        return float(region_style_distance({"relu4_1": output}, content_deepest, style, ("relu4_1",), regions))

    assert distance(right, 1) == pytest.approx(0.0, abs=1e-6)
    assert distance(wrong, 1) == pytest.approx(0.0, abs=1e-6)  # the same mean and deviation overall
    assert distance(right, 2) == pytest.approx(0.0, abs=1e-6)
    assert distance(wrong, 2) > 0.05


def test_gradients_reach_the_output_only_and_a_training_step_stays_finite(encoder_weights, photos):
    from stylizer.factory import build_encoder

    encoder = build_encoder("relu3_1", encoder_weights)
    content = to_tensor(photos["coffee"][:64, :64])
    style = to_tensor(photos["astronaut"][:64, :64])
    output = content.clone().requires_grad_(True)
    perceptual_loss(encoder, output, content, style, regions=3).style.backward()
    assert bool(torch.isfinite(output.grad).all()) and float(output.grad.abs().max()) > 0
    torch.manual_seed(0)
    model = build_model(StylizerConfig(decoder_width=0.25, matrix_dim=16, style_regions=3), encoder_weights)
    sampler = PairSampler([photos["coffee"]], [photos["astronaut"]], base_size=32, scales=(2.0, 2.0))
    values = train_step(model, sampler.sample(2), make_optimizer(model))
    assert all(torch.isfinite(torch.tensor(v)) for v in values.as_dict().values())


@pytest.mark.parametrize("regions", [0, 9, 2.5])
def test_config_refuses_a_region_count_out_of_range(regions):
    with pytest.raises(ValueError, match="style_regions"):
        StylizerConfig(style_regions=regions)
    assert StylizerConfig.from_dict({"head": "affine"}).style_regions == 1


def test_region_statistics_stay_float32_under_bf16_autocast():
    torch.manual_seed(3)
    features = 50 + torch.rand(2, 8, 12, 12)  # deviations small beside the means: bf16 would cancel them
    labels, _ = cluster_features(features, 2)
    masks = torch.nn.functional.one_hot(labels, 2).permute(0, 3, 1, 2).float()
    plain = region_mean_std(features, masks)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        cast = region_mean_std(features, masks)
    assert cast[1].dtype == torch.float32
    assert torch.allclose(cast[1], plain[1], rtol=1e-4)
