"""`lenet serve` under load and under hostile clients on loopback; prints one JSON object.

Measures: N concurrent clients posting pictures (errors, requests/s, p50/p99); /health's latency while
the server is idle, while stalled clients (in their headers or their bodies) hold connections, and
while 4 clients post 3.9 MB JSON bodies; how long the stalled are held before being dropped; the
server's memory while 100 clients stall 4 MiB uploads. Then, on a fresh server with the default limits,
a hostile crowd (--slow slow-loris clients sending a header byte a second and reconnecting every 10 s,
and --uploads 4 MiB uploads stalled before their last byte, opened again every 10 s) for --crowd-s
seconds: the share of /health probes answered, their p50/p99, and the server's memory when idle, at its
peak, and a minute after the crowd leaves. tests/test_server_load.py checks the same behaviour small
(every client answered, every stalled one dropped); the latencies are measured here only.

Usage: python benchmarks/speed/serve_load.py --model-dir DIR [--clients 50] [--requests 400]
       [--request-timeout-s 2] [--stalled 300] [--slow 200] [--uploads 100] [--crowd-s 20]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lenet.testing import SAMPLE_PNG
from lenet.testing.machine import cpu_kind
from lenet.testing.server import (HealthPoller, SlowClients, StalledUploads, concurrent_clients, running_server,
                                  seconds_until_dropped, stalled_connection)

# How long after the crowd leaves the server's memory is measured again.
SETTLE_S = 60


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
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--uploads", type=int, default=100)
    parser.add_argument("--crowd-s", type=float, default=20.0)
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
    result["crowd"] = _crowd(args.model_dir, args.slow, args.uploads, args.crowd_s)
    print(json.dumps(result))


def _crowd(model_dir: str, slow: int, uploads: int, seconds: float) -> dict:
    """/health and the server's memory under SLOW slow-loris clients and UPLOADS stalled 4 MiB uploads at once,
    on a fresh server with the default limits."""
    with running_server(model_dir) as (url, process):
        concurrent_clients(url, 4, 20, SAMPLE_PNG.read_bytes(), "image/png")  # warm: the first answers allocate
        with HealthPoller(url) as idle:
            time.sleep(2)
        idle_mb = _rss_mb(process.pid)
        with HealthPoller(url) as health, SlowClients(url, slow) as crowd, StalledUploads(url, uploads, 4 * 2**20):
            peak_mb, end = idle_mb, time.monotonic() + seconds
            while time.monotonic() < end:
                time.sleep(0.5)
                peak_mb = max(peak_mb, _rss_mb(process.pid))
        time.sleep(SETTLE_S)
        figures = health.figures()
        answered = figures["health_requests"] / max(1, figures["health_requests"] + figures["health_failures"])
        return {"slow_clients": slow, "stalled_uploads": uploads, "seconds": seconds, **crowd.figures(),
                **figures, "health_answered_pct": round(100 * answered, 2), "idle_health_p99_ms":
                idle.figures()["health_p99_ms"], "rss_idle_mb": round(idle_mb), "rss_peak_mb": round(peak_mb),
                f"rss_{SETTLE_S}s_after_mb": round(_rss_mb(process.pid))}


if __name__ == "__main__":
    main()
