"""A fleet page server on a synthetic moving fleet, in a process of its own, so the server tests can load it with
many clients and read its memory: prints `listening PORT`, then `stats {json}` (streams open, sent, closed by why,
RSS) every half second until --seconds."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from swarm_bridge.fleetweb import FleetPage, FleetWebServer, WebSettings
from swarm_bridge.fleetweb.feed import PageFeed
from swarm_bridge.sim.records import robot_state_body


def rss_kb() -> int:
    """This process's resident memory (VmRSS), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--robots", type=int, default=200)
    parser.add_argument("--period", type=float, default=0.5)
    parser.add_argument("--send-timeout", type=float, default=2.0)
    parser.add_argument("--max-clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=300.0, help="the process ends by itself after this")
    args = parser.parse_args()
    feed = PageFeed(FleetPage(fleet="load", stale_after_ns=10_000_000_000))
    server = FleetWebServer(feed, WebSettings(port=0, period_s=args.period, send_timeout_s=args.send_timeout,
                                              max_clients=args.max_clients)).start()
    print(f"listening {server.port}", flush=True)
    deadline, step = time.monotonic() + args.seconds, 0
    while time.monotonic() < deadline:
        now = time.time_ns()
        for index in range(args.robots):  # every robot moves on a circle of its own
            angle = step / 20 + index
            body = robot_state_body(f"robot_{index:04d}", "amr", ["navigate"], x=10 * math.cos(angle) + index % 20,
                                    y=10 * math.sin(angle) + index // 20, battery=100 - step % 100, now_ns=now)
            feed.apply(FleetPage.on_state, body, now)
            feed.apply(FleetPage.on_record, body["robot_id"], "telemetry/odometry", 700, now)
        print("stats", json.dumps({**server.stats(), "rss_kb": rss_kb()}), flush=True)
        step += 1
        time.sleep(0.5)
    server.stop()


if __name__ == "__main__":
    main()
