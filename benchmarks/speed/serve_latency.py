"""Start `lenet serve` on loopback, send a fixed number of requests from N concurrent clients, print JSON.

Reports requests/s and p50/p99 latency of POST /predict, and beside it (same run, same machine)
the latency of the same prediction made in-process through the library, so the HTTP overhead
can be read off whatever the machine's speed.

Usage: python benchmarks/speed/serve_latency.py --model-dir DIR_OR_ONNX [--clients 8] [--requests 800]
       [--payload png|json]
(an .onnx file made by `lenet export` is served and predicted by onnxruntime)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from lenet.inference import open_model
from lenet.pictures.inputs import image_to_input
from lenet.testing import SAMPLE_PNG
from lenet.testing.server import free_port


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", "--model", dest="model_dir", required=True, metavar="DIR_OR_ONNX")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--payload", choices=["png", "json"], default="png")
    args = parser.parse_args()

    png = SAMPLE_PNG.read_bytes()
    if args.payload == "png":
        body, content_type = png, "image/png"
    else:
        body, content_type = json.dumps({"image": image_to_input(png, "sample").tolist()}).encode(), "application/json"

    predict = open_model(args.model_dir).probabilities
    in_process = []
    for _ in range(200):
        start = time.perf_counter()
        predict(image_to_input(png, "sample")[None])
        in_process.append(time.perf_counter() - start)

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "lenet.cli", "serve", "--model-dir", args.model_dir,
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)

        def one(_: int) -> float:
            request = urllib.request.Request(url + "/predict", data=body, headers={"Content-Type": content_type})
            start = time.perf_counter()
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
            return time.perf_counter() - start

        for i in range(20):  # warm-up
            one(i)
        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            latencies = list(pool.map(one, range(args.requests)))
        wall = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=10)

    print(json.dumps({
        "payload": args.payload, "clients": args.clients, "requests": args.requests,
        "requests_per_s": round(args.requests / wall, 1),
        "p50_ms": round(1000 * percentile(latencies, 50), 2), "p99_ms": round(1000 * percentile(latencies, 99), 2),
        "in_process_predict_p50_ms": round(1000 * statistics.median(in_process), 2),
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
