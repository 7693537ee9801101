import json

import pytest
import torch

from stylizer import CheckpointError, StylizerConfig, build_model, load_checkpoint, load_model, save_model
from stylizer.checkpoint import metadata_path, save_checkpoint
from stylizer.encoder_weights import seeded_weights


def test_round_trip_is_bit_exact(small_model, tmp_path):
    path = tmp_path / "m.safetensors"
    digest = save_model(path, small_model, round=3, metrics={"total": 1.5})
    model, checkpoint = load_model(path)
    assert checkpoint.sha256 == digest
    assert checkpoint.metadata["round"] == 3
    original = small_model.trainable_state()
    restored = model.trainable_state()
    assert original.keys() == restored.keys()
    for key in original:
        assert torch.equal(original[key], restored[key]), key
    assert model.config == small_model.config


def test_tampered_checkpoint_is_refused(small_model, tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(path, small_model)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt or was modified"):
        load_checkpoint(path)


def test_truncated_checkpoint_is_refused(small_model, tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(path, small_model)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)


def test_missing_or_garbled_metadata_is_refused(small_model, tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(path, small_model)
    metadata_path(path).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)
    metadata_path(path).unlink()
    with pytest.raises(CheckpointError, match="metadata .* is missing"):
        load_checkpoint(path)


def test_wrong_encoder_is_refused(tmp_path):
    other = build_model(StylizerConfig(decoder_width=0.25), seeded_weights(7, announce=False))
    path = tmp_path / "m.safetensors"
    save_model(path, other)
    meta = json.loads(metadata_path(path).read_text())
    assert meta["encoder"]["identity"] == "seeded:7"
    model, _ = load_model(path)  # the encoder it names is rebuilt: fine
    assert model.encoder.identity == "seeded:7"
    # now claim a different encoder than the one the tensors were trained with
    meta["encoder"]["identity"] = "seeded:0"
    metadata_path(path).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="differs from the one the checkpoint was trained"):
        load_model(path)
    # and an explicit VGG file that is not the checkpoint's encoder
    vgg = tmp_path / "vgg.safetensors"
    from safetensors.torch import save_file
    save_file(seeded_weights(3, announce=False).state, str(vgg))
    meta["encoder"]["identity"] = "seeded:7"
    metadata_path(path).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="trained against encoder seeded:7, but --vgg-weights is sha256:"):
        load_model(path, vgg_weights=vgg)


def test_shape_mismatch_names_the_tensor(small_model, tmp_path, encoder_weights):
    path = tmp_path / "m.safetensors"
    save_model(path, small_model)
    meta = json.loads(metadata_path(path).read_text())
    meta["config"]["decoder_width"] = 0.5  # architecture no longer matches the tensors
    metadata_path(path).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="tensor decoder.* has shape"):
        load_model(path)


def test_nan_parameters_are_never_saved(small_model, tmp_path):
    state = small_model.trainable_state()
    key = next(k for k in state if k.startswith("decoder."))
    state[key] = state[key].clone().fill_(float("nan"))
    with pytest.raises(CheckpointError, match="NaN"):
        save_checkpoint(tmp_path / "m.safetensors", state, {})
    assert not (tmp_path / "m.safetensors").exists()


def test_a_checkpoint_of_nan_tensors_with_a_matching_hash_is_refused_on_load(small_model, tmp_path):
    import hashlib

    from stylizer.checkpoint import tensor_bytes

    path = tmp_path / "m.safetensors"
    save_model(path, small_model)
    state = small_model.trainable_state()
    key = next(k for k in state if k.startswith("decoder."))
    state[key] = state[key].clone().fill_(float("nan"))
    data = tensor_bytes(state)  # written behind the saver's back, hash recomputed: only finiteness is wrong
    path.write_bytes(data)
    meta = json.loads(metadata_path(path).read_text())
    meta["sha256"] = hashlib.sha256(data).hexdigest()
    metadata_path(path).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=f"{key} contains NaN or Inf"):
        load_checkpoint(path)


def test_absurd_config_sizes_are_refused_before_anything_is_allocated():
    for values in ({"matrix_dim": 60000}, {"upsample_channels": 10**6}, {"kernel_size": 99}, {"grid_depth": 64},
                   {"grid_stride": 3}, {"matrix_dim": 1.5}, {"head": "pixels"}):
        with pytest.raises(ValueError):
            StylizerConfig.from_dict({"encoder_layer": "relu3_1", **values})


def test_loss_weights_and_style_taps_are_checked_and_old_configs_keep_eq5_as_written():
    for values in ({"style_weight": -1.0}, {"style_weight": True}, {"style_weight": float("inf")},
                   {"style_weight": "4"}, {"style_from": "relu5_1"}, {"style_from": 3},
                   {"style_from": "relu4_1", "loss_layer": "relu3_1"}, {"colour_reference": "content"}):
        with pytest.raises(ValueError):
            StylizerConfig.from_dict({"encoder_layer": "relu3_1", **values})
    config = StylizerConfig.from_dict({"encoder_layer": "relu3_1", "head": "affine"})
    assert (config.style_weight, config.style_from, config.colour_reference) == (1.0, "", "style")
    assert StylizerConfig(loss_layer="relu4_1", style_from="relu4_1").style_from == "relu4_1"
