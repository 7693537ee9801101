"""Hot swaps of the served model never disturb requests in flight."""

import threading
import time

import numpy as np
import torch

from edge_client.model_slot import ModelSlot
from stylizer import Stylizer, StylizerConfig, build_model, save_model
from stylizer.checkpoint import load_checkpoint


def test_swaps_during_requests_give_whole_answers_from_one_model(tmp_path, encoder_weights, photos):
    models = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = build_model(StylizerConfig(decoder_width=0.25, matrix_dim=8), encoder_weights)
        with torch.no_grad():  # an untrained affine head is exactly its prior: give each model its own field
            model.decoder.head.weight.normal_(0, 0.05)
        models.append(model)
    content = photos["astronaut"][:48, :64].copy()
    expected = [Stylizer(m, device="cpu", precision="fp32").stylize(content, photos["coffee"]) for m in models]
    assert not np.array_equal(*expected)
    staging = [tmp_path / f"m{i}.safetensors" for i in range(2)]
    for model, path in zip(models, staging, strict=True):
        save_model(path, model)
    slot_file = tmp_path / "slot" / "current.safetensors"
    slot_file.parent.mkdir()

    def publish(i: int) -> None:
        checkpoint = load_checkpoint(staging[i])
        from stylizer.checkpoint import write_checkpoint_bytes
        write_checkpoint_bytes(slot_file, staging[i].read_bytes(), checkpoint.metadata)

    publish(0)
    slot = ModelSlot(slot_file, device="cpu", precision="fp32")
    slot.load()
    results: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    def phone() -> None:
        while not stop.is_set():
            try:
                stylizer = slot.current()
                out = stylizer.stylize(content, photos["coffee"])
                matches = [i for i in range(2) if np.array_equal(out, expected[i])]
                if len(matches) != 1:
                    failures.append("output matches neither model")
                results.extend(matches)
            except Exception as exc:
                failures.append(repr(exc))

    threads = [threading.Thread(target=phone) for _ in range(3)]
    for thread in threads:
        thread.start()
    seen_each_model = True
    for swap in range(8):  # each model published in turn; wait (bounded) until a phone is served it
        model = (swap + 1) % 2
        served_before = len(results)
        publish(model)
        deadline = time.monotonic() + 120  # generous: a busy 2-core machine may take seconds a stylize
        while model not in results[served_before:] and not failures and time.monotonic() < deadline:
            threading.Event().wait(0.05)
        seen_each_model = seen_each_model and model in results[served_before:]
    stop.set()
    for thread in threads:
        thread.join()
    assert not failures, failures[:3]
    assert seen_each_model and set(results) == {0, 1} and slot.swaps >= 8


def test_a_pair_read_mid_write_is_not_refused_for_good(tmp_path, encoder_weights, photos):
    """A load that fails on a half-written pair skips that pair only: once the writer finishes,
    the same model (same sha256 in its metadata) is served."""
    from stylizer.checkpoint import metadata_path, write_checkpoint_bytes

    paths = [tmp_path / f"m{seed}.safetensors" for seed in (1, 2)]
    for seed, path in zip((1, 2), paths, strict=True):
        torch.manual_seed(seed)
        save_model(path, build_model(StylizerConfig(decoder_width=0.25, matrix_dim=8), encoder_weights))
    staging = [load_checkpoint(path) for path in paths]
    slot_file = tmp_path / "slot" / "current.safetensors"
    slot_file.parent.mkdir()
    write_checkpoint_bytes(slot_file, paths[0].read_bytes(), staging[0].metadata)
    slot = ModelSlot(slot_file, device="cpu", precision="fp32")
    slot.load()
    first = slot.sha256
    # model 2's metadata beside model 1's tensors: what a reader can see while a writer is mid-pair
    metadata_path(slot_file).write_text(metadata_path(paths[1]).read_text())
    assert slot.current_with_hash()[1] == first
    assert slot.current_with_hash()[1] == first  # the bad pair is skipped, not re-read per request
    write_checkpoint_bytes(slot_file, paths[1].read_bytes(), staging[1].metadata)
    assert slot.current_with_hash()[1] == staging[1].sha256 != first


def test_a_round_with_unchanged_weights_is_still_announced_and_served_under_its_number(tmp_path, encoder_weights,
                                                                                          caplog):
    import logging

    from edge_client.model_slot import install_model

    model = build_model(StylizerConfig(decoder_width=0.25, matrix_dim=8), encoder_weights)
    slot_file = tmp_path / "slot" / "current.safetensors"
    slot_file.parent.mkdir()
    save_model(slot_file, model, round=3)
    slot = ModelSlot(slot_file, device="cpu", precision="fp32")
    slot.load()
    checkpoint = load_checkpoint(slot_file)
    install_model(slot_file, checkpoint.state, {**checkpoint.metadata, "round": 4})  # the same weights, round 4
    with caplog.at_level(logging.INFO, logger="edge_client.model_slot"):
        _, sha = slot.current_with_hash()
        slot.current_with_hash()
    assert sha == checkpoint.sha256 and slot.round == 4 and slot.swaps == 0
    announced = [r.getMessage() for r in caplog.records if "now serving round 4" in r.getMessage()]
    assert len(announced) == 1, caplog.text
