import threading
import time

from edge_client.load_signal import LoadSignal


def test_training_waits_for_a_quiet_spell_but_not_forever(tmp_path):
    service = LoadSignal(tmp_path / "serving.load")
    trainer = LoadSignal(tmp_path / "serving.load")  # the other process's view of the same file
    assert trainer.wait_until_idle(quiet_s=0.5) < 0.1  # never busy: goes on at once
    service.add(1)

    def finish_request() -> None:
        time.sleep(0.3)
        service.add(-1)

    threading.Thread(target=finish_request).start()
    waited = trainer.wait_until_idle(quiet_s=0.2)
    assert 0.45 <= waited < 2.0  # the request (0.3 s) plus the quiet spell (0.2 s)
    time.sleep(0.2)
    assert trainer.wait_until_idle(quiet_s=0.2) < 0.1  # quiet for long enough already: no wait
    service.add(1)
    assert 0.3 <= trainer.wait_until_idle(max_wait_s=0.3, quiet_s=0.1) < 1.0  # bounded under constant load
    service.reset()
    assert trainer.value() == 0


def test_a_stamp_from_before_a_reboot_does_not_hold_training_back(tmp_path):
    import struct

    (tmp_path / "serving.load").write_bytes(struct.pack("<qq", 0, time.monotonic_ns() + 10**15))
    assert LoadSignal(tmp_path / "serving.load").wait_until_idle(quiet_s=0.5) < 0.1
