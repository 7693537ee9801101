"""The cloud's run config is checked before anything starts, not by a ServerApp failing inside Flower."""

import os
import subprocess
import sys

import pytest

from cloud_server.app import DEFAULTS, run_settings


def test_defaults_pass_and_numbers_given_as_text_become_numbers():
    settings = run_settings({"num-server-rounds": "7", "learning-rate": "1e-4", "not-ours": "kept out"})
    assert settings["num-server-rounds"] == 7 and settings["learning-rate"] == 1e-4
    assert "not-ours" not in settings
    assert run_settings({}) == {**DEFAULTS, "learning-rate": float(DEFAULTS["learning-rate"])}


@pytest.mark.parametrize(("config", "message"), [
    ({"num-server-rounds": -1}, "num-server-rounds must be at least 0"),
    ({"wait-for-ready": "maybe"}, "wait-for-ready must be true or false"),
    ({"min-nodes": -1}, "min-nodes must be at least 1"),
    ({"images-per-round": "many"}, "images-per-round must be a whole number"),
    ({"base-size": 4}, "base-size must be at least 16"),
    ({"local-epochs": 0}, "local-epochs must be at least 1"),
    ({"learning-rate": "nan"}, "learning-rate must be > 0"),
    ({"aggregator": "median"}, "aggregator must be one of"),
    ({"server-momentum": 1.0}, "momentum in [0, 1)"),
    ({"sample-nodes": 2, "min-nodes": 4}, "sample-nodes needs wait-for-ready false"),
    ({"sample-nodes": 5, "min-nodes": 4, "wait-for-ready": False}, "more than min-nodes (4)"),
])
def test_values_the_run_could_not_use_are_refused_by_name(config, message):
    with pytest.raises(ValueError) as refused:
        run_settings(config)
    assert message in str(refused.value)


def test_every_run_config_key_is_declared_in_the_flower_app_flwr_run_submits():
    import tomllib
    from pathlib import Path

    import cloud_server

    app_toml = Path(cloud_server.__file__).parent / "flower_app" / "pyproject.toml"
    declared = tomllib.loads(app_toml.read_text())["tool"]["flwr"]["app"]["config"]
    assert declared == DEFAULTS  # flwr run refuses a --run-config key the app does not declare


def test_cloud_serve_refuses_a_bad_run_config_before_starting_anything(tmp_path):
    for args, message in ((["--rounds", "0"], "--rounds must be at least 1"),
                          (["--run-config", "base_size=32"], "unknown key 'base_size'")):
        result = subprocess.run([sys.executable, "-m", "fedvst.cli", "cloud", "serve", "--data-dir",
                                 str(tmp_path / "cloud"), "--port", "1", "--registry-port", "2", *args],
                                capture_output=True, text=True, timeout=120, env={**os.environ, "FEDVST_OFFLINE": "1"})
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and len(errors) == 1 and message in errors[0], result.stderr
        assert not (tmp_path / "cloud").exists()
