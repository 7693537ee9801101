import pytest
import torch

from stylizer import StylizerConfig, build_model, make_optimizer
from stylizer.losses import perceptual_loss


@pytest.mark.parametrize("head", ["affine", "image"])
def test_gradients_reach_every_learned_module_and_not_the_encoder(encoder_weights, head):
    torch.manual_seed(0)
    small_model = build_model(StylizerConfig(decoder_width=0.25, matrix_dim=16, head=head), encoder_weights)
    content = torch.rand(2, 3, 33, 45)
    style = torch.rand(2, 3, 40, 40)
    target_c = torch.rand(2, 3, 66, 90)
    target_s = torch.rand(2, 3, 66, 90)

    def backward() -> None:
        small_model.zero_grad(set_to_none=True)
        out = small_model(content, small_model.style_code(style), (66, 90), **({"full": target_c} if head == "affine"
                                                                               else {}))
        perceptual_loss(small_model.encoder, out, target_c, target_s).total.backward()

    backward()
    if head == "affine":  # its last layer starts at zero (output = the prior): one step opens every path
        make_optimizer(small_model, lr=1e-3).step()
        backward()
    for prefix, module in small_model.learned_modules().items():
        for name, param in module.named_parameters():
            assert param.grad is not None, f"{prefix}.{name} got no gradient"
            assert param.grad.abs().sum() > 0, f"{prefix}.{name} got a zero gradient"
    for name, param in small_model.encoder.named_parameters():
        assert not param.requires_grad and param.grad is None, name


def test_odd_sizes_and_width_multiplier(encoder_weights):
    full = build_model(StylizerConfig(decoder_width=1.0), encoder_weights)
    half = build_model(StylizerConfig(decoder_width=0.5), encoder_weights)
    count = lambda m: sum(p.numel() for p in m.decoder.parameters())  # noqa: E731
    assert count(half) < 0.5 * count(full)
    x = torch.rand(1, 3, 31, 47)
    with torch.no_grad():
        out = half(x, half.style_code(torch.rand(1, 3, 29, 29)), (47, 71))
    assert out.shape == (1, 3, 47, 71)


def test_relu4_1_and_wct_variants_run(encoder_weights):
    model = build_model(StylizerConfig(encoder_layer="relu4_1", colorization="wct", decoder_width=0.25),
                        encoder_weights)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 37, 41), model.style_code(torch.rand(1, 3, 48, 48)), (37, 41))
    assert out.shape == (1, 3, 37, 41)
    assert torch.isfinite(out).all()
