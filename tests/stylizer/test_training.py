import numpy as np
import pytest
import torch

from stylizer import PairSampler, evaluate, make_optimizer, train_step
from stylizer.images import to_tensor
from stylizer.training import TrainBatch


def test_training_lowers_the_image_heads_loss(encoder_weights, photos):
    from stylizer import StylizerConfig, build_model

    torch.manual_seed(0)
    small_model = build_model(StylizerConfig(decoder_width=0.25, matrix_dim=16, head="image"), encoder_weights)
    train = PairSampler([photos["astronaut"], photos["motorcycle_left"]], [photos["coffee"], photos["rocket"]],
                        base_size=32, scales=(1.0, 2.0), seed=1)
    held_out = list(PairSampler([photos["astronaut"], photos["motorcycle_left"]], [photos["coffee"], photos["rocket"]],
                                base_size=32, scales=(1.0, 2.0), seed=99).batches(6))
    before = evaluate(small_model, held_out)
    optimizer = make_optimizer(small_model, lr=3e-4)
    for _ in range(300):
        values = train_step(small_model, train.sample(2), optimizer)
        assert np.isfinite(values.total)
    after = evaluate(small_model, held_out)
    assert after.total < 0.6 * before.total, (before, after)
    assert after.total == pytest.approx(after.content + after.style, rel=1e-5)


def test_sampler_pairs_input_and_target_sizes(photos):
    sampler = PairSampler([photos["astronaut"]], [photos["coffee"]], base_size=40, scales=(1.0, 3.0), seed=0)
    seen = set()
    for batch in sampler.batches(40, batch_size=2):
        assert batch.content.shape == (2, 3, 40, 40) and batch.style.shape == (2, 3, 40, 40)
        assert batch.content_target.shape == batch.style_target.shape
        seen.add(batch.target_size[0] / 40)
    assert {1.0, 1.5, 2.0}.issubset({round(s * 4) / 4 for s in seen}) or len(seen) >= 4


def test_non_finite_loss_leaves_weights_untouched(small_model):
    before = {k: v.clone() for k, v in small_model.trainable_state().items()}
    nan = torch.full((1, 3, 32, 32), float("nan"))
    batch = TrainBatch(nan, nan, torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    with pytest.raises(FloatingPointError):
        train_step(small_model, batch, make_optimizer(small_model))
    for key, value in small_model.trainable_state().items():
        assert torch.equal(value, before[key])


def test_optimizer_state_round_trips_and_refuses_a_misfit(small_model, photos, encoder_weights):
    from stylizer import StylizerConfig, build_model
    from stylizer.training import load_optimizer_state, optimizer_state_tensors

    sampler = PairSampler([photos["astronaut"]], [photos["coffee"]], base_size=32, seed=0)
    optimizer = make_optimizer(small_model)
    train_step(small_model, sampler.sample(2), optimizer)
    flat = optimizer_state_tensors(optimizer)
    assert any(k.endswith(".exp_avg_sq") for k in flat)
    fresh = make_optimizer(small_model)
    assert load_optimizer_state(fresh, flat)
    for key, value in optimizer_state_tensors(fresh).items():
        assert torch.equal(value, flat[key]), key
    other = build_model(StylizerConfig(decoder_width=0.5), encoder_weights)
    assert not load_optimizer_state(make_optimizer(other), flat)


def test_cover_crops_span_the_requested_share_of_the_picture(photos):
    sampler = PairSampler([photos["astronaut"]], [photos["coffee"]], base_size=32, scales=(1.0, 1.0), seed=0,
                          cover=(1.0, 1.0))
    batch = sampler.sample(1)
    whole = torch.nn.functional.interpolate(to_tensor(photos["astronaut"]), size=(32, 32), mode="area")
    assert batch.content.shape == (1, 3, 32, 32)
    assert float((batch.content - whole).abs().mean()) < 0.03  # the crop is (nearly) the whole square photo
    with pytest.raises(ValueError, match="cover"):
        PairSampler([photos["astronaut"]], [photos["coffee"]], cover=(0.5, 1.5))


def test_the_models_config_sets_the_style_weight_and_the_style_taps_of_the_training_loss(encoder_weights, photos):
    from stylizer import StylizerConfig, build_model
    from stylizer.losses import perceptual_loss
    from stylizer.training import compute_losses

    batch = PairSampler([photos["astronaut"]], [photos["coffee"]], base_size=48, scales=(1.0, 1.0), seed=3).sample(2)
    base = {"decoder_width": 0.25, "matrix_dim": 16, "loss_layer": "relu4_1", "colour_weight": 0.0}
    terms = {}
    for name, extra in (("all", {}), ("deep", {"style_from": "relu3_1"}), ("heavy", {"style_weight": 4.0}),
                        ("vs_style", {"colour_weight": 1e6}), ("vs_prior", {"colour_weight": 1e6,
                                                                            "colour_reference": "prior"})):
        torch.manual_seed(0)
        terms[name] = compute_losses(build_model(StylizerConfig(**{**base, **extra}), encoder_weights), batch).values()
    for values, weight in ((terms["all"], 1.0), (terms["deep"], 1.0), (terms["heavy"], 4.0)):
        assert values.total == pytest.approx(values.content + weight * values.style, rel=1e-5)
    assert terms["heavy"].style == pytest.approx(terms["all"].style, rel=1e-5)
    # untrained, the output is the prior's: its colour is the prior's exactly, not yet the style's
    assert terms["vs_prior"].style == pytest.approx(terms["all"].style, rel=1e-4)
    assert terms["vs_style"].style > terms["all"].style * 1.001
    # the deep taps' share only: what the full sum has, less relu1_1 and relu2_1
    model = build_model(StylizerConfig(**base), encoder_weights)
    output = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    style = to_tensor(photos["coffee"])[..., :96, :96]
    full = perceptual_loss(model.encoder, output, output, style)
    deep = perceptual_loss(model.encoder, output, output, style, style_from="relu3_1")
    shallow = perceptual_loss(model.encoder, output, output, style, style_from="relu2_1")
    assert 0.0 < float(deep.style) < float(shallow.style) < float(full.style)
    assert terms["deep"].style < terms["all"].style


def test_whole_video_frames_at_the_edges_working_size_move_the_learned_tensors(encoder_weights):
    """The federation's edges train on whole video frames at 64 px (scaled, as the network sees a key
    frame): the flat gate must let the gradient through and the head's inputs must not saturate the
    residual's bound, so a few Adam steps at the edges' learning rate move every learned module and
    lower the training loss (the 2026-12-04 model moved by 7e-9 here)."""
    from fedvst.samples import TRAINING_SEGMENTS, segment_frames
    from stylizer import PairSampler, StylizerConfig, build_model, evaluate, make_optimizer, train_step
    from stylizer.flat_gate import contrast_gate
    from stylizer.training import compute_losses

    torch.manual_seed(0)
    config = StylizerConfig(decoder_width=0.25, matrix_dim=16, loss_layer="relu4_1", style_weight=4.0,
                            style_from="relu3_1", colour_weight=7.5e6)
    model = build_model(config, encoder_weights)
    # a street shot (the door close-up of bikes 0–30 is flat: there the gate rightly stays shut)
    frames = [image for _, image in segment_frames(TRAINING_SEGMENTS[2], 10)]
    sampler = PairSampler(frames, frames[::2], base_size=64, seed=3)
    batches = [sampler.sample(2) for _ in range(2)]
    gate = contrast_gate(batches[0].content, model.grid_size(64, 64), config.flat_contrast)
    assert float(gate.mean()) > 0.05  # a gate that lets the residual (and its gradient) through somewhere
    model.train()
    compute_losses(model, batches[0]).objective.backward()
    assert float(model.decoder.head.weight.grad.abs().max()) > 0.0
    before = {key: value.clone() for key, value in model.trainable_state().items()}
    loss_before = evaluate(model, batches).total
    optimizer = make_optimizer(model, lr=1e-4)
    for step in range(12):
        train_step(model, batches[step % 2], optimizer)
    moved = {key: float((model.trainable_state()[key] - value).abs().max()) for key, value in before.items()}
    for module in ("colorization", "decoder", "meta_smoothing"):
        assert max(v for k, v in moved.items() if k.startswith(module)) > 1e-4, (module, moved)
    assert evaluate(model, batches).total < loss_before
