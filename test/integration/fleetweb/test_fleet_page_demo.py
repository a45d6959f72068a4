"""`swarm-bridge demo --web`: a newcomer's fleet from real bags, watched in headless Chromium while it runs; the
robots appear where their odometry puts them, their streams flow, their tasks end, and the demo still delivers
every message."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fleet_page import chromium, robots_shown, screenshot, table_shown, task_counts_shown, text, updates, wait_until

BAGS = ("evo_nav2_turtlebot_mcap", "roomba_walker_gazebo_db3")  # both with odometry


@pytest.mark.integration
def test_demo_web_shows_the_fleet_move(tmp_path: Path, shared_bags: Path, ros_env: dict[str, str]) -> None:
    bags = tmp_path / "bags"
    bags.mkdir()
    for name in BAGS:
        (bags / name).symlink_to(shared_bags / name)
    demo = subprocess.Popen([sys.executable, "-m", "swarm_bridge.cli", "demo", "--no-progress", "--bags", str(bags),
                             "--rate", "1", "--tasks", "6", "--run-dir", str(tmp_path / "run"), "--plot",
                             str(tmp_path / "demo.png"), "--web", "0"], env=ros_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []

    def read() -> None:
        assert demo.stdout is not None
        lines.extend(line.rstrip() for line in demo.stdout)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    browser = chromium(tmp_path / "chromium")
    try:
        url = wait_until(lambda: next((line.split("fleet page: ")[1] for line in lines
                                       if line.startswith("demo: fleet page: ")), None) or (
            demo.poll() is not None and "exited"), 180, "the demo's page")
        assert url != "exited", "\n".join(lines[-30:])
        browser.get(str(url))
        wait_until(lambda: updates(browser) > 0, 60, "the page's first snapshot")
        wait_until(lambda: len(robots_shown(browser)) == 2 and text(browser, "#online-count") == "2", 120,
                   "the demo's two robots online")
        # Their odometry puts them on the map, in the frames the bags report.
        wait_until(lambda: "odom" in text(browser, "#frames"), 120, "poses from the robots' odometry")
        streams = wait_until(lambda: s if len(s := table_shown(browser, "#streams", "stream")) >= 5 else None, 60,
                             "the replayed streams")
        assert "telemetry/odom" in streams
        wait_until(lambda: task_counts_shown(browser).get("done") == 6, 180, "the six tasks done on the page")
        screenshot(browser, tmp_path, "fleet_page_demo.png")
    finally:
        browser.quit()
        try:
            status = demo.wait(600)
        finally:
            if demo.poll() is None:
                demo.kill()
    reader.join(10)
    assert status == 0, "\n".join(lines[-40:])
    assert "every replayed message was delivered once" in "\n".join(lines)
