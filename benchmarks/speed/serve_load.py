"""`lenet serve` under load and under hostile clients on loopback; prints one JSON object.

Measures: N concurrent clients posting pictures (errors, requests/s, p50/p99); /health's latency while
the server is idle, while stalled clients (in their headers or their bodies) hold connections, and
while 4 clients post 3.9 MB JSON bodies; how long the stalled are held before being dropped; and the
server's memory while 100 clients stall 4 MiB uploads. tests/test_server_load.py checks the same
behaviour small (every client answered, every stalled one dropped); the latencies are measured here only.

Usage: python benchmarks/speed/serve_load.py --model-dir DIR [--clients 50] [--requests 400]
       [--request-timeout-s 2] [--stalled 300]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lenet.testing import SAMPLE_PNG
from lenet.testing.machine import cpu_kind
from lenet.testing.server import (HealthPoller, concurrent_clients, running_server, seconds_until_dropped,
                                  stalled_connection)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", "--model", dest="model_dir", required=True)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--request-timeout-s", type=float, default=2.0)
    parser.add_argument("--stalled", type=int, default=300)
    args = parser.parse_args()

    result: dict = {"request_timeout_s": args.request_timeout_s, **cpu_kind()}
    with running_server(args.model_dir, "--request-timeout-s", str(args.request_timeout_s)) as (url, process):
        with HealthPoller(url) as idle:
            time.sleep(2)
        result["idle"] = idle.figures()
        with HealthPoller(url) as loaded:
            result["load"] = concurrent_clients(url, args.clients, args.requests, SAMPLE_PNG.read_bytes(), "image/png")
        result["load"] |= loaded.figures()
        with HealthPoller(url) as stalled_poller:
            stalled = [stalled_connection(url, ("nothing", "headers", "body")[i % 3]) for i in range(args.stalled)]
            dropped = seconds_until_dropped(stalled, give_up_s=args.request_timeout_s + 30)
        held = [d for d in dropped if d is not None]
        result["stalled"] = {"connections": args.stalled, "still_open": dropped.count(None),
                             "held_max_s": round(max(held), 2) if held else None, **stalled_poller.figures()}
        big_json = json.dumps({"image": [[0.123456789] * 28] * 10_700}).encode()  # 3.9 MB, under the 4 MiB limit
        with HealthPoller(url) as json_poller:
            json_load = concurrent_clients(url, 4, 40, big_json, "application/json")
        result["json_3_9_mb"] = {"body_bytes": len(big_json), "requests": json_load["requests"],
                                 "p50_ms": json_load["p50_ms"], **json_poller.figures()}
        before = _rss_mb(process.pid)
        uploads = [stalled_connection(url, "body", 4 * 1024 * 1024) for _ in range(100)]
        time.sleep(min(1.0, args.request_timeout_s / 2))
        peak = _rss_mb(process.pid)
        seconds_until_dropped(uploads, give_up_s=args.request_timeout_s + 30)
        time.sleep(1)
        result["stalled_4_mib_uploads"] = {"uploads": 100, "rss_before_mb": round(before), "rss_held_mb": round(peak),
                                           "rss_after_mb": round(_rss_mb(process.pid))}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
