import pickle

import pytest
import torch
from safetensors.torch import save_file

from stylizer.encoder import VGGEncoder
from stylizer.encoder_weights import read_weights_file, seeded_vgg_state, seeded_weights, weights_for_identity
from stylizer.torch_zip import read_torch_checkpoint


@pytest.fixture(scope="module")
def state():
    return seeded_vgg_state(5)


@pytest.mark.parametrize("zip_format", [True, False])
def test_torch_checkpoints_are_parsed_without_unpickling(state, tmp_path, zip_format):
    path = tmp_path / "vgg.pth"
    full = dict(state)
    full["classifier.0.weight"] = torch.randn(4, 3)
    full["features.0.weight"] = full["features.0.weight"].transpose(2, 3)  # non-contiguous view survives
    torch.save(full, path, _use_new_zipfile_serialization=zip_format)
    parsed = read_torch_checkpoint(path)
    assert parsed.keys() == full.keys()
    for key in full:
        assert torch.equal(parsed[key], full[key]), key


def test_hostile_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("echo pwned > /dev/null",))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"features.0.weight": Evil()}, protocol=2))
    with pytest.raises(ValueError, match="refused"):
        read_torch_checkpoint(path)


def test_weights_file_identity_is_format_independent(state, tmp_path):
    torch.save(state, tmp_path / "a.pth")
    save_file(state, str(tmp_path / "a.safetensors"))
    a = read_weights_file(tmp_path / "a.pth")
    b = read_weights_file(tmp_path / "a.safetensors")
    assert a.identity == b.identity and a.identity.startswith("sha256:")
    encoder = VGGEncoder("relu3_1", b.state, b.identity)
    assert encoder(torch.rand(1, 3, 32, 32))["relu3_1"].shape == (1, 256, 8, 8)


def test_seeded_weights_are_deterministic():
    assert all(torch.equal(a, b) for a, b in zip(seeded_vgg_state(0).values(), seeded_vgg_state(0).values(),
                                                 strict=True))
    assert not torch.equal(seeded_vgg_state(0)["features.0.weight"], seeded_vgg_state(1)["features.0.weight"])


def test_seeded_fallback_is_announced(capsys):
    seeded_weights(0)
    assert "WARNING" in capsys.readouterr().err


def test_unavailable_real_weights_give_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty hub cache, and FEDVST_OFFLINE is set
    with pytest.raises(ValueError, match="not available here"):
        weights_for_identity("sha256:" + "0" * 64)


def test_missing_layers_are_named(state):
    partial = {k: v for k, v in state.items() if not k.startswith("features.10.")}
    with pytest.raises(ValueError, match="features.10"):
        VGGEncoder("relu3_1", partial, "test")
