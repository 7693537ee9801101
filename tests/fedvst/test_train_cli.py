import subprocess
import sys

from PIL import Image

from stylizer import load_model


def run_train(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedvst.cli", "train", "--content", str(tmp_path / "content"),
                           "--style", str(tmp_path / "style"), "--steps", "4", "--checkpoint-every", "2",
                           "--base-size", "32", "--scale-max", "2", "--decoder-width", "0.25",
                           "--out", str(tmp_path / "out.safetensors"), *extra],
                          capture_output=True, text=True, timeout=300)


def test_fedvst_train_writes_verified_checkpoints(tmp_path, photos):
    for folder, names in (("content", ("astronaut", "motorcycle_left")), ("style", ("coffee",))):
        (tmp_path / folder).mkdir()
        for name in names:
            Image.fromarray(photos[name]).save(tmp_path / folder / f"{name}.png")
    result = run_train(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "saved" in result.stdout
    model, checkpoint = load_model(tmp_path / "out.safetensors")
    assert checkpoint.metadata["step"] == 4 and checkpoint.metadata["recipe"]["content_images"] == 2
    assert model.config.decoder_width == 0.25 and model.config.glow_weight == 0.0
    result = run_train(tmp_path, "--init", str(tmp_path / "out.safetensors"), "--glow-weight", "1e7",
                       "--neutral-residual", "none", "--out", str(tmp_path / "continued.safetensors"))
    assert result.returncode == 0, result.stderr
    continued, metadata = load_model(tmp_path / "continued.safetensors")
    assert continued.config.glow_weight == 1e7 and continued.config.decoder_width == 0.25
    assert continued.config.neutral_residual == "none" and model.config.neutral_residual == "local"
    assert metadata.metadata["recipe"]["init_sha256"] == checkpoint.sha256 != ""
    (tmp_path / "content" / "broken.jpg").write_text("not a picture")
    result = run_train(tmp_path)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.jpg" in errors[0] and "not a readable image" in errors[0]
    (tmp_path / "content" / "broken.jpg").unlink()
    result = run_train(tmp_path, "--out", str(tmp_path / "model.txt"), "--steps", "400", "--checkpoint-every", "400")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and "must end in .safetensors" in errors[0], result.stderr
    assert "train:" not in result.stderr  # refused before the first step, not after 400 of them
    (tmp_path / "taken.safetensors").mkdir()
    for args, message in ((["--base-size", "100000"], "--base-size must be 16…1024"),
                          (["--out", str(tmp_path / "taken.safetensors")], "is a folder"),
                          (["--scale-max", "inf"], "--scale-max <= 8"),
                          (["--glow-weight", "-1"], "--glow-weight must be a number in [0"),
                          (["--neutral-residual", "grey"], "--neutral-residual must be one of local, global, none"),
                          # issue 26: an unwritable folder was found out after training, naming a temp file
                          (["--out", "/proc/t09.safetensors"], "the folder /proc is not writable")):
        result = run_train(tmp_path, *args, "--steps", "400", "--checkpoint-every", "400")
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and len(errors) == 1 and message in errors[0], (args, result.stderr)
        assert "Traceback" not in result.stderr and "train:" not in result.stderr
