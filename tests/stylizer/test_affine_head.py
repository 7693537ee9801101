"""The affine head: photorealistic by construction (a smooth colour field rendered on the real frame)."""

import numpy as np
import pytest
import torch

from stylizer import ColourField, FieldError, Stylizer, StylizerConfig, build_model, load_model, make_optimizer
from stylizer.colour_prior import apply_global, mkl_transform
from stylizer.field import identity_field
from stylizer.images import to_tensor, to_uint8
from stylizer.render import render_field as render_fast
from stylizer.render_torch import from_colour_field, render_field, to_colour_field
from stylizer.training import resize


def _reference_mkl(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    """MKL written out in NumPy (eigendecompositions), independent of stylizer.colour_prior."""
    def stats(image):
        flat = image.reshape(-1, 3).astype(np.float64) / 255.0
        return flat.mean(0), np.cov(flat.T, bias=True)

    def power(matrix, p, floor=1e-5):
        values, vectors = np.linalg.eigh(matrix)
        return vectors @ np.diag(np.maximum(values, floor) ** p) @ vectors.T

    mc, cc = stats(content)
    ms, cs = stats(style)
    root = power(cc, 0.5)
    transform = power(cc, -0.5) @ power(root @ cs @ root, 0.5, floor=0.0) @ power(cc, -0.5)
    out = (content.reshape(-1, 3) / 255.0 - mc) @ transform.T + ms
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8).reshape(content.shape)


@pytest.fixture()
def affine_model(encoder_weights):
    torch.manual_seed(0)
    return build_model(StylizerConfig(decoder_width=0.25, matrix_dim=16), encoder_weights)


def test_an_untrained_affine_model_is_exactly_the_mkl_prior(affine_model, photos):
    stylizer = Stylizer(affine_model, device="cpu", precision="fp32", style_size=10_000, work_width=10_000)
    content, style = photos["astronaut"][:200, :280], photos["coffee"]
    out = stylizer.stylize(content, style)
    reference = _reference_mkl(content, style)
    assert np.abs(out.astype(int) - reference.astype(int)).max() <= 1
    assert np.abs(out.astype(float) - content).mean() > 10  # it did transfer colour


def test_renderers_agree_within_one_level(photos):
    rng = np.random.default_rng(0)
    frame = photos["chelsea"]
    for grid, depth in (((7, 11), 1), ((1, 1), 1), ((5, 4), 3)):
        field = ColourField((rng.normal(0, 0.3, (*grid, depth, 12)) + identity_field(grid, depth).coefficients)
                            .astype(np.float32))
        fast = render_fast(frame, field)
        exact = to_uint8(render_field(from_colour_field(field), to_tensor(frame)))
        assert np.abs(fast.astype(int) - exact.astype(int)).max() <= 1, (grid, depth)
        assert to_colour_field(from_colour_field(field)).coefficients.tobytes() == field.coefficients.tobytes()


@pytest.mark.parametrize("r", [0.5, 1, 1.5, 2, 3.75])
@pytest.mark.parametrize("hw", [(37, 51), (64, 64), (45, 17)])
def test_output_size_is_exact(affine_model, photos, r, hw):
    stylizer = Stylizer(affine_model, device="cpu", precision="fp32")
    content = photos["rocket"][: hw[0], : hw[1]].copy() if min(hw) >= 16 else None
    out = stylizer.stylize(content, photos["coffee"], r=r)
    assert out.shape == (max(1, round(r * hw[0])), max(1, round(r * hw[1])), 3)
    tensor_out = stylizer.stylize(to_tensor(content), photos["coffee"], r=r)
    assert tuple(tensor_out.shape[-2:]) == out.shape[:2]


def test_a_constant_colour_stays_constant_and_no_texture_is_invented(affine_model, photos):
    flat = np.full((90, 130, 3), (90, 140, 60), np.uint8)
    untrained = Stylizer(affine_model, device="cpu", precision="fp32").stylize_frame(flat, photos["coffee"],
                                                                                     size=(180, 260))
    assert np.ptp(untrained.reshape(-1, 3), axis=0).max() == 0  # one colour in, one colour out
    with torch.no_grad():  # a trained-looking head: every weight non-zero
        for param in affine_model.decoder.parameters():
            param.normal_(0, 0.05)
    trained = Stylizer(affine_model, device="cpu", precision="fp32").stylize_frame(flat, photos["coffee"],
                                                                                   size=(180, 260))
    # the field may drift smoothly (the encoder's zero padding reaches the border cells), never in texture
    assert np.abs(np.diff(trained.astype(int), axis=0)).max() <= 1
    assert np.abs(np.diff(trained.astype(int), axis=1)).max() <= 1
    textured = photos["astronaut"][:90, :130]
    assert np.abs(np.diff(textured.astype(int), axis=1)).max() > 20  # what texture would look like


def test_detail_comes_from_the_full_resolution_frame(affine_model, photos):
    from simulations.photoreal_metrics import structure_corr

    stylizer = Stylizer(affine_model, device="cpu", precision="fp32")
    frame = photos["astronaut"]  # 512×512; the network runs at its working width (128)
    out = stylizer.stylize_frame(frame, photos["coffee"])
    blurred = to_uint8(resize(resize(to_tensor(frame), (128, 128)), (512, 512)))
    from_blurred = stylizer.stylize_frame(blurred, photos["coffee"])  # what a decoder at 128 px could show
    high_freq = lambda image: np.abs(np.diff(image.astype(float), axis=1)).mean()  # noqa: E731
    assert structure_corr(out, frame) > 0.97
    assert high_freq(out) > 1.5 * high_freq(from_blurred)


def test_field_bytes_round_trip_and_bad_fields_are_refused():
    field = identity_field((9, 16))
    again = ColourField.from_bytes(field.to_bytes(), field.shape)
    assert np.array_equal(again.coefficients, field.coefficients)
    with pytest.raises(FieldError, match="needs"):
        ColourField.from_bytes(field.to_bytes()[:-2], field.shape)
    with pytest.raises(FieldError, match="version"):
        ColourField.from_bytes(field.to_bytes(), field.shape, version=99)
    with pytest.raises(FieldError, match="too large"):
        ColourField.from_bytes(b"", (100_000, 1, 1, 12))
    broken = field.coefficients.copy()
    broken[0, 0, 0, 0] = np.nan
    with pytest.raises(FieldError, match="NaN"):
        ColourField(broken)


def test_image_head_checkpoints_still_load_and_run(photos):
    from stylizer.factory import image_head_checkpoint_path

    model, checkpoint = load_model(image_head_checkpoint_path(), allow_download=False)
    assert "head" not in checkpoint.metadata["config"] and model.head == "image"
    out = Stylizer(model, device="cpu").stylize_frame(photos["chelsea"], photos["coffee"], size=(100, 150))
    assert out.shape == (100, 150, 3) and out.std() > 5


def test_mkl_prior_survives_flat_and_gray_images(photos):
    gray = np.repeat(photos["astronaut"].mean(2, keepdims=True), 3, 2).astype(np.uint8)
    flat = np.full((32, 32, 3), 128, np.uint8)
    for content in (gray, flat):
        image = to_tensor(content).double()
        transform = mkl_transform(image, to_tensor(photos["coffee"]).double())
        assert torch.isfinite(transform).all()
        out = apply_global(image, transform)
        assert torch.isfinite(out).all()
    flat_image = to_tensor(flat).double()
    recoloured = apply_global(flat_image, mkl_transform(flat_image, to_tensor(photos["coffee"]).double()))
    assert float(recoloured.flatten(2).std(-1).max()) < 1e-6  # one colour in, one colour out


def test_a_few_hundred_steps_lower_the_affine_loss(encoder_weights, photos):
    from stylizer import PairSampler, evaluate, train_step

    torch.manual_seed(0)
    affine_model = build_model(StylizerConfig(decoder_width=0.25, matrix_dim=16, content_reference="prior",
                                              colour_weight=100.0, smoothness_weight=0.1), encoder_weights)

    sampler = PairSampler([photos["astronaut"], photos["motorcycle_left"]], [photos["coffee"], photos["rocket"]],
                          base_size=48, scales=(1.0, 2.0), seed=1)
    batches = [sampler.sample(2) for _ in range(4)]
    before = evaluate(affine_model, batches)
    assert before.content < 1e-9  # untrained: exactly the prior, which is the content reference
    optimizer = make_optimizer(affine_model, lr=3e-4)
    for step in range(200):
        assert np.isfinite(train_step(affine_model, batches[step % 4], optimizer).total)
    after = evaluate(affine_model, batches)
    assert after.total < 0.95 * before.total, (before, after)
    assert after.total == pytest.approx(after.content + after.style, rel=1e-5)


def _with_residual(model, value: float = 0.03):
    """Give the (zero-initialised) residual head a non-zero output that varies from cell to cell."""
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        model.decoder.head.bias.fill_(value)
        model.decoder.head.weight.copy_(0.01 * torch.randn(model.decoder.head.weight.shape, generator=generator))
    return model


def test_flat_regions_keep_the_prior_single_transform(encoder_weights, photos):
    """Flat stays flat: with the gate, a residual head changes nothing inside a uniform field."""
    canvas = np.zeros((128, 192, 3), np.uint8)
    canvas[32:96, 64:128] = photos["chelsea"][100:164, 150:214]
    content, style = to_tensor(canvas), to_tensor(photos["coffee"][::4, ::4])
    spreads = []
    for flat_contrast in (0.03, 0.0):
        torch.manual_seed(0)
        model = _with_residual(build_model(StylizerConfig(decoder_width=0.25, matrix_dim=16,
                                                          flat_contrast=flat_contrast), encoder_weights))
        with torch.no_grad():
            field = model.field(content, model.style_code(style))  # (1, 12, 16, 24): 8 px cells
        black = torch.ones(16, 24, dtype=torch.bool)
        black[3:13, 7:17] = False  # cells within one cell of the photo are not "inside" the black field
        inside = field[0][:, black]
        spreads.append(float((inside.max(1).values - inside.min(1).values).max()))
    assert spreads[0] < 1 / 255 / 100  # one transform over the whole black field, to a hundredth of a level
    assert spreads[1] > 1e-3  # without the gate the same residual head varies there


@pytest.mark.parametrize("level", [0, 255])
def test_the_builtin_keeps_a_large_black_or_white_field_as_flat_as_the_prior(photos, level):
    """Flat stays flat on the shipped model: a held-out photo on a large uniform field; anywhere in the
    field, up to the photo's edge (a halo beside it counts), the built-in's output varies by at most a
    few levels more than the untrained prior's, whose single global transform cannot vary there at all."""
    from fedvst.samples import sample_photo
    from simulations.bench_photoreal import composite, flat_spread
    from stylizer.images import load_image

    model, _ = load_model(allow_download=False)
    untrained = build_model(StylizerConfig.from_dict(model.config.to_dict()), allow_download=False)
    canvas, inside = composite(load_image(sample_photo("grace_hopper")), level)  # held out: no training saw it
    spreads = [flat_spread(Stylizer(net, device="cpu", precision="fp32").stylize_frame(
        canvas, photos["coffee"], size=canvas.shape[:2]), inside) for net in (model, untrained)]
    assert inside.mean() > 0.2  # a large field
    assert spreads[1] <= 1  # the prior: one transform, one colour
    assert spreads[0] <= spreads[1] + 3, spreads


def test_the_colour_guard_never_lets_the_residual_make_the_colour_worse_than_the_prior(encoder_weights, photos):
    from simulations.photoreal_metrics import colour_distance

    content, style = photos["astronaut"][::2, ::2], photos["coffee"][::2, ::2]
    distances = {}
    for guard in (True, False):
        torch.manual_seed(0)
        model = _with_residual(build_model(StylizerConfig(decoder_width=0.25, matrix_dim=16, colour_guard=guard),
                                           encoder_weights), value=0.08)
        out = Stylizer(model, device="cpu", precision="fp32").stylize_frame(content, style, size=content.shape[:2])
        distances[guard] = colour_distance(out, content, style)
    torch.manual_seed(0)
    prior = Stylizer(build_model(StylizerConfig(decoder_width=0.25, matrix_dim=16), encoder_weights), device="cpu",
                     precision="fp32").stylize_frame(content, style, size=content.shape[:2])
    prior_distance = colour_distance(prior, content, style)
    assert distances[False] > prior_distance + 0.02  # this residual alone moves the colour off the style's
    assert distances[True] <= prior_distance + 0.01  # the guard keeps (at most) what does not


def test_the_guard_keeps_per_item_the_largest_share_whose_colour_stays_within_the_limit(encoder_weights, photos):
    """The guard measures every share in one batch; each item of a batch keeps what a share-by-share
    reading of its contract gives: the largest of GUARD_SHARES whose output lands at most
    GUARD_TOLERANCE further from the style's CIELAB statistics than the prior's, else none."""
    from stylizer.losses import lab_mean_std
    from stylizer.model import GUARD_LAB_WEIGHTS, GUARD_SHARES, GUARD_TOLERANCE

    model = build_model(StylizerConfig(decoder_width=0.25, matrix_dim=16), encoder_weights).eval()
    content = torch.cat([resize(to_tensor(photos[name]), (48, 64)) for name in ("astronaut", "chelsea", "coffee",
                                                                                "astronaut", "chelsea", "coffee")])
    style = to_tensor(photos["coffee"][::4, ::4])
    code = model.style_code(style)
    prior = model.prior(content, code).float().reshape(-1, 12, 1, 1)
    generator = torch.Generator().manual_seed(3)
    scales = torch.tensor([0.0, 0.01, 0.015, 0.02, 0.03, 0.06]).view(-1, 1, 1, 1)  # item by item, a larger residual
    field = prior + scales * torch.randn(6, 12, 6, 8, generator=generator)
    guarded = model._guard_colour(field, prior, content, code.lab_stats)

    weights = torch.tensor(GUARD_LAB_WEIGHTS)
    kept = []
    for item in range(6):
        image, target = content[item:item + 1], code.lab_stats.float() * weights

        def distance(candidate: torch.Tensor, image=image, target=target) -> float:
            scale = (lab_mean_std(image) * weights - target).norm().clamp_min(1e-6)
            return float((lab_mean_std(render_field(candidate, image)) * weights - target).norm() / scale)

        own, base = field[item:item + 1], prior[item:item + 1]
        limit = distance(base) + GUARD_TOLERANCE
        share = next((a for a in GUARD_SHARES if distance(base + a * (own - base)) <= limit), 0.0)
        kept.append(share)
        assert torch.allclose(guarded[item:item + 1], base + share * (own - base), atol=1e-6), item
    assert len(set(kept)) >= 3, kept  # the batch holds items that keep all, part and none of their residual


def test_the_gate_is_nearly_closed_wherever_the_render_reaches_a_flat_region_and_open_on_texture():
    """The renderer interpolates the field between cell centres, so the cells whose interpolation reaches
    a flat region must keep almost none of their residual (else it shows there as a halo), while cells
    in texture keep nearly all of it: the gate is soft (a geometric mean), not a 0/1 minimum that would
    close every cell of a small video frame."""
    from stylizer.flat_gate import GATE_FLOOR, contrast_gate

    generator = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, 64, 128, generator=generator)  # textured everywhere…
    content[..., :, :44] = 1.0  # …but a white field over the left 44 px (cells of 8 px: 0–4 in it, 5 straddles it)
    gate = contrast_gate(content, (8, 16), 0.03)[0, 0]
    assert float(gate[:, :4].max()) <= GATE_FLOOR * 1.001  # inside the field, flat neighbours only
    assert float(gate[:, 4:6].max()) < 0.04  # the centres the white pixels up to x = 44 interpolate between
    assert float(gate[:, 7:].min()) > 0.9  # textured throughout, with textured neighbours
    assert float(gate[:, 6].min()) > float(gate[:, 5].max())  # and in between it rises smoothly


@pytest.mark.parametrize("mode", ["none", "global"])
def test_the_residual_moves_greys_as_its_neutral_mode_says_and_still_moves_colours(encoder_weights, photos, mode):
    """neutral_residual: with "none" every neutral pixel (black, greys, white), in whatever cell, is
    rendered by the prior's one global transform; with "global" by one transform too, the same in every
    cell; a coloured pixel still gets a residual that differs from cell to cell; with "local" (the
    default) the same head sends greys differently in each cell."""
    content = to_tensor(photos["astronaut"][::4, ::4])
    style = to_tensor(photos["coffee"][::4, ::4])
    greys = torch.linspace(0, 1, 9).view(1, 9, 1, 1).expand(1, 9, 3, 1)  # 9 neutral colours
    coloured = torch.tensor([[0.8, 0.3, 0.2], [0.2, 0.5, 0.9]]).view(1, 2, 3, 1)
    spreads = {}
    for neutral in ("local", mode):
        torch.manual_seed(0)
        model = _with_residual(build_model(StylizerConfig(decoder_width=0.25, matrix_dim=16, flat_contrast=0.0,
                                                          colour_guard=False, neutral_residual=neutral),
                                           encoder_weights))
        model.eval()
        with torch.no_grad():
            code = model.style_code(style)
            field = model.field(content, code)
            prior = model.prior(content, code).float()
        transforms = field[0].permute(1, 2, 0).reshape(-1, 1, 3, 4)  # every cell's 3×4 transform
        on_grey = transforms[..., :3] @ greys + transforms[..., 3:]
        on_colour = transforms[..., :3] @ coloured + transforms[..., 3:]
        spreads[neutral] = (float((on_grey.max(0).values - on_grey.min(0).values).max()),  # between cells
                            float((on_colour.max(0).values - on_colour.min(0).values).max()),
                            float((on_grey - (prior[:, None, :, :3] @ greys + prior[:, None, :, 3:])).abs().max()))
    assert spreads["local"][0] > 1e-3  # the plain residual treats the same grey differently in each cell
    assert spreads[mode][0] < 1e-5  # one response to each grey in every cell
    assert spreads[mode][1] > 1e-3  # colours still differ from cell to cell: the residual acts on chroma
    if mode == "none":
        assert spreads[mode][2] < 1e-5  # every grey goes where the prior sends it
    else:
        assert spreads[mode][2] > 1e-4  # one shift of every grey, the cells' mean
    with pytest.raises(ValueError, match="residual_offsets"):
        StylizerConfig(neutral_residual=mode, residual_offsets=True)


@pytest.mark.parametrize("bound", [0.05, 0.6])
def test_the_residual_stays_within_its_bound_and_comes_near_it(encoder_weights, photos, bound):
    """residual_bound squashes every coefficient of the residual into (−bound, bound): a large residual
    lands close to the bound and never past it; bounds outside (0, 2] are refused in one line."""
    content = to_tensor(photos["astronaut"][::4, ::4])
    style = to_tensor(photos["coffee"][::4, ::4])
    torch.manual_seed(0)
    model = _with_residual(build_model(StylizerConfig(decoder_width=0.25, matrix_dim=16, flat_contrast=0.0,
                                                      colour_guard=False, residual_bound=bound),
                                       encoder_weights), value=5.0).eval()
    with torch.no_grad():
        code = model.style_code(style)
        residual = model.field(content, code) - model.prior(content, code).float().reshape(1, 12, 1, 1)
    assert float(residual.abs().max()) <= bound * (1 + 1e-5)
    assert float(residual.abs().max()) > 0.9 * bound
    for wrong in (0.0, -0.1, 2.5, float("nan")):
        with pytest.raises(ValueError, match="residual_bound"):
            StylizerConfig(residual_bound=wrong)
