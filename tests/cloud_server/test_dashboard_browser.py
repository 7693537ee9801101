"""The dashboard in a real headless Chromium (Debian's, driven by Playwright), on a real 2-edge
federation on 127.0.0.1 with a token."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from stylizer import save_model
from tests import procs
from tests.cloud_server.test_federation import EDGE_PHOTOS, cloud_status, fill_edge, wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("FEDVST_BROWSER_TEST") == "required"  # .ci/run installs Chromium and sets this
SCREENSHOT_TO = os.environ.get("FEDVST_DASHBOARD_SCREENSHOT")  # where to copy the screenshot (docs/dashboard.png)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # this machine's closed network refuses the rest


def _status_code(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=60) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.slow
def test_the_dashboard_shows_the_rounds_and_edges_of_a_real_federation_in_a_browser(tmp_path, small_model):
    if CHROMIUM is None:
        if REQUIRED:
            pytest.fail("FEDVST_BROWSER_TEST=required but no chromium on PATH (apt-get install chromium)")
        pytest.skip("no chromium on PATH (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    token = "dashboard-token-0123456789abcdef"
    (tmp_path / "token").write_text(token + "\n")
    initial = tmp_path / "initial.safetensors"
    save_model(initial, small_model)
    cloud_dir = tmp_path / "cloud"
    port, registry_port, dashboard_port = procs.free_port(), procs.free_port(), procs.free_port()
    logs = [tmp_path / "cloud.log", cloud_dir / "logs" / "superlink.log"]
    cloud = procs.start(["cloud", "serve", "--data-dir", str(cloud_dir), "--port", str(port), "--registry-port",
                         str(registry_port), "--rounds", "2", "--min-nodes", "2", "--images-per-round", "4",
                         "--initial-checkpoint", str(initial), "--token-file", str(tmp_path / "token"),
                         "--dashboard", f"127.0.0.1:{dashboard_port}", "--run-config", "base-size=32",
                         "--run-config", "eval-images=2", "--run-config", "ready-poll-s=2"], logs[0])
    edges = []
    try:
        procs.wait_port(registry_port, cloud, log=logs[0])
        names = ["edge-paris", "edge-lyon"]
        for i, name in enumerate(names):
            fill_edge(tmp_path / f"edge{i}", EDGE_PHOTOS[i])  # frames phones left before the edge started
            logs += [tmp_path / f"edge{i}.log", tmp_path / f"edge{i}" / "supernode.log"]
            edges.append(procs.start(["edge", "serve", "--port", str(procs.free_port()), "--data-dir",
                                      str(tmp_path / f"edge{i}"), "--cloud", f"127.0.0.1:{port}", "--registry",
                                      f"127.0.0.1:{registry_port}", "--token-file", str(tmp_path / "token"),
                                      "--name", name, "--no-train-between-syncs"], logs[-2]))

        def round_1_served() -> bool:  # round 2 never starts: no edge gets new frames
            edges_now = cloud_status(registry_port, "--token-file", str(tmp_path / "token"))["federation"] or {}
            return (edges_now.get("state") == "waiting" and edges_now.get("round") == 2
                    and sorted(e["name"] for e in edges_now.get("edges", [])) == sorted(names)
                    and all(e["serving_round"] == 1 for e in edges_now["edges"]))

        wait_for(round_1_served, 420, "round 1 counted and served by both edges", logs)
        base = f"http://127.0.0.1:{dashboard_port}/"
        assert _status_code(base) == 401 and _status_code(base + "state.json") == 401  # no token: refused
        assert _status_code(base + "state.json?token=wrong") == 401
        history = [json.loads(line) for line in (cloud_dir / "history.jsonl").read_text().splitlines()]
        scores = {r["round"]: r["metrics"]["heldout_total"] for r in history}
        assert sorted(scores) == [0, 1]

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1100, "height": 900})
                refused = page.goto(base)
                assert refused is not None and refused.status == 401
                page.goto(f"{base}?token={token}", wait_until="domcontentloaded")
                # the page arrives with its state: before any refresh, the rounds and their movement are there
                assert page.locator('#chart svg g[id="round-1"]').count() == 1
                moved = page.locator('#rounds tbody tr[data-round="1"] td').nth(2).inner_text()
                assert moved != "UNCHANGED" and float(moved.split(",")[0]) > 0, moved
                assert history[1]["moved_max"] > 0
                page.wait_for_selector('#chart svg g[id="round-1"]', timeout=60_000)
                page.wait_for_function("document.querySelectorAll('#edges tbody tr').length === 2", timeout=60_000)
                assert page.locator('#chart svg g[id^="round-"]').count() == 2  # rounds 0 and 1
                rows = page.locator("#edges tbody tr")
                shown = sorted(rows.nth(i).locator("td").nth(0).inner_text() for i in range(rows.count()))
                assert shown == sorted(names)
                serving = [rows.nth(i).locator("td").nth(4).inner_text() for i in range(rows.count())]
                assert serving == ["1", "1"]
                assert "waiting: 0 of 2 edges ready" in page.locator("#line").inner_text()
                assert "round_000001.safetensors" in page.locator("#newest").inner_text()
                assert "2 rounds" not in page.locator("#summary").inner_text()  # one round counted, and round 0
                assert "1 rounds counted" in page.locator("#summary").inner_text()
                before = page.locator("#updated").inner_text()
                time.sleep(6)  # it refreshes by itself
                page.wait_for_function(f"document.getElementById('updated').textContent !== {json.dumps(before)}",
                                       timeout=30_000)
                shot = tmp_path / "dashboard.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 10_000
                if SCREENSHOT_TO:
                    shutil.copyfile(shot, Path(SCREENSHOT_TO))
            finally:
                browser.close()
    finally:
        for edge in edges:
            procs.stop(edge)
        procs.stop(cloud)
