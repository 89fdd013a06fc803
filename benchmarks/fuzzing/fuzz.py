"""Fuzz the files lenet reads and the server's requests (lenet.testing.fuzz_cases, lenet.testing.fuzz_requests),
and measure the work generated pictures cost to read (--kind work, lenet.testing.fuzz_work): one JSON object of
figures per class, seeded. Example: OMP_NUM_THREADS=1 python benchmarks/fuzzing/fuzz.py --cases 100000 --seed 0
--kind all (--model-dir DIR: the model the requests class serves, else a tiny MLP)"""

from __future__ import annotations

import argparse
import json
import time

from lenet.testing.fuzz_cases import CLASSES

KINDS = (*CLASSES, "work", "requests")


def fuzz_work(cases: int, seed: int) -> dict:
    """The work class, imported only when asked for: it builds a network to time its forward pass."""
    from lenet.testing.fuzz_work import fuzz_work as run
    return run(cases, seed)


def fuzz_requests(cases: int, seed: int, model_dir: str | None) -> dict:
    """The server class, imported only when asked for: it builds the app."""
    from lenet.testing.fuzz_requests import fuzz_requests as run
    return run(cases, seed, model_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=1000, help="cases per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", choices=(*KINDS, "all"), default="all")
    parser.add_argument("--model-dir", help="the model the requests class serves (default: a tiny MLP trained "
                                            "a few steps on noise; the answers' content does not matter)")
    args = parser.parse_args()
    kinds = KINDS if args.kind == "all" else (args.kind,)
    for kind in kinds:
        start = time.perf_counter()
        figures = (fuzz_requests(args.cases, args.seed, args.model_dir) if kind == "requests"
                   else fuzz_work(args.cases, args.seed) if kind == "work" else CLASSES[kind](args.cases, args.seed))
        print(json.dumps({"kind": kind, "seed": args.seed, **figures,
                          "seconds": round(time.perf_counter() - start, 1)}), flush=True)


if __name__ == "__main__":
    main()
