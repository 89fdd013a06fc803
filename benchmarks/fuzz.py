"""Fuzz the files lenet reads (and, with benchmarks/fuzz_requests.py, the server): one JSON object of figures
per class, seeded. Example: OMP_NUM_THREADS=1 python benchmarks/fuzz.py --cases 100000 --seed 0 --kind all"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz_cases import CLASSES  # noqa: E402

KINDS = (*CLASSES, "requests")


def fuzz_requests(cases: int, seed: int) -> dict:
    """The server class (benchmarks/fuzz_requests.py), imported only when asked for: it builds the app."""
    from fuzz_requests import fuzz_requests as run
    return run(cases, seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=1000, help="cases per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", choices=(*KINDS, "all"), default="all")
    args = parser.parse_args()
    kinds = KINDS if args.kind == "all" else (args.kind,)
    for kind in kinds:
        start = time.perf_counter()
        figures = fuzz_requests(args.cases, args.seed) if kind == "requests" else CLASSES[kind](args.cases, args.seed)
        print(json.dumps({"kind": kind, "seed": args.seed, **figures,
                          "seconds": round(time.perf_counter() - start, 1)}), flush=True)


if __name__ == "__main__":
    main()
