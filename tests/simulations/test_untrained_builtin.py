"""The untrained built-in: the built-in's architecture and loss, where its own training started."""

import torch

from simulations.federated import untrained_builtin_checkpoint
from stylizer import StylizerConfig, builtin_checkpoint_path, load_checkpoint


def test_it_has_the_builtins_config_encoder_and_tensor_names_but_not_its_learned_values(tmp_path):
    builtin = load_checkpoint(builtin_checkpoint_path())
    fresh = load_checkpoint(untrained_builtin_checkpoint(tmp_path / "fresh.safetensors", 0))
    # the same config, read as the loader reads it (keys added since the built-in was written get their legacy value)
    assert StylizerConfig.from_dict(fresh.metadata["config"]) == StylizerConfig.from_dict(builtin.metadata["config"])
    assert fresh.metadata["encoder"]["identity"] == builtin.metadata["encoder"]["identity"]
    assert set(fresh.state) == set(builtin.state)
    assert all(fresh.state[k].shape == builtin.state[k].shape for k in builtin.state)
    assert any(not torch.equal(fresh.state[k], builtin.state[k]) for k in builtin.state)
