"""Independent training runs side by side: one `lenet train` process per seed, each pinned to its
share of the CPU cores or to one GPU. The usual way to use several devices for models this small
(an ensemble, a seed sweep): no gradient exchange, so nothing waits for anything else."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Callable

from .errors import LenetError

SEED_PLACEHOLDER = "{seed}"


def parse_seeds(text: str) -> list[int]:
    """'0-4' -> [0, 1, 2, 3, 4]; '1,3,7-8' -> [1, 3, 7, 8]. Seeds are distinct and at most 1,000."""
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d{1,9})\s*(?:-\s*(\d{1,9})\s*)?", part)
        if not match:
            raise LenetError(f"--seeds: expected seeds like 0-4 or 1,3,7-8, got {text!r}")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if last < first:
            raise LenetError(f"--seeds: the range {part.strip()} runs backwards")
        seeds.extend(range(first, last + 1))
        if len(seeds) > 1000:
            raise LenetError("--seeds: at most 1,000 seeds")
    if len(set(seeds)) != len(seeds):
        raise LenetError(f"--seeds: a seed is given twice in {text!r}")
    return seeds


@dataclass(frozen=True)
class Slot:
    """Where one run goes: CPU cores to pin it to, or one GPU."""
    cores: tuple[int, ...] = ()
    gpu: int | None = None

    def environment(self) -> dict[str, str]:
        if self.gpu is not None:
            return {"CUDA_VISIBLE_DEVICES": str(self.gpu)}
        # torch sizes its thread pool from OMP_NUM_THREADS: one thread per pinned core.
        return {"OMP_NUM_THREADS": str(len(self.cores))}


def slots(parallel: int, device: str) -> list[Slot]:
    """PARALLEL places to run in: one GPU each on CUDA, else the usable cores split evenly."""
    if device == "cuda":
        import torch
        gpus = torch.cuda.device_count()
        if parallel > gpus:
            raise LenetError(f"--parallel {parallel}: this machine has {gpus} GPU(s); one run per GPU")
        return [Slot(gpu=i) for i in range(parallel)]
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if parallel > len(cores):
        raise LenetError(f"--parallel {parallel}: only {len(cores)} CPU cores to share; use at most {len(cores)}")
    share = len(cores) // parallel
    return [Slot(cores=tuple(cores[i * share:(i + 1) * share])) for i in range(parallel)]


def _pump(process: subprocess.Popen, prefix: str, out: Callable[[str], None]) -> None:
    for line in process.stdout:
        out(f"{prefix}{line.rstrip()}")


def run_seeds(argv: list[str], seeds: list[int], parallel: int, device: str,
              out: Callable[[str], None] = print) -> dict[int, int]:
    """Run `lenet train ARGV --seed S` for every seed, PARALLEL at a time; returns each seed's exit code.

    ARGV must name the model directory with a {seed} placeholder, so that each run has its own.
    Every output line of a run goes to OUT prefixed "[seed S] ". A SIGTERM to this process is passed
    on to the runs (Ctrl-C reaches them from the terminal), which save a checkpoint and stop.
    """
    if not any(SEED_PLACEHOLDER in arg for arg in argv):
        raise LenetError(f"--seeds: --model-dir must contain {SEED_PLACEHOLDER} (e.g. runs/best/seed-{{seed}}), "
                         f"so that each seed trains into its own directory")
    if not 1 <= parallel <= len(seeds):
        raise LenetError(f"--parallel must be from 1 to the number of seeds ({len(seeds)}), got {parallel}")
    places, pending, running, codes = slots(parallel, device), list(seeds), {}, {}
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            out(line)

    def forward(signum, frame):
        for process, _, _ in running.values():
            process.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        while pending or running:
            while pending and len(running) < parallel:
                seed, slot = pending.pop(0), places[_free(places, running)]
                command = [sys.executable, "-m", "lenet", "train", *(a.replace(SEED_PLACEHOLDER, str(seed)) for a in argv),
                           "--seed", str(seed)]
                process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                           env={**os.environ, **slot.environment()},
                                           preexec_fn=(lambda c=slot.cores: os.sched_setaffinity(0, c))
                                           if slot.cores and hasattr(os, "sched_setaffinity") else None)
                pump = threading.Thread(target=_pump, args=(process, f"[seed {seed}] ", say), daemon=True)
                pump.start()
                running[seed] = (process, pump, slot)
            finished = _wait_any(running)
            process, pump, _ = running.pop(finished)
            pump.join()
            codes[finished] = process.returncode
    finally:
        signal.signal(signal.SIGTERM, previous)
    return codes


def _free(places: list[Slot], running: dict) -> int:
    taken = {slot for _, _, slot in running.values()}
    return next(i for i, place in enumerate(places) if place not in taken)


def _wait_any(running: dict) -> int:
    """The seed of a run that has ended, waiting for one."""
    while True:
        for seed, (process, _, _) in running.items():
            if process.poll() is not None:
                return seed
        try:
            next(iter(running.values()))[0].wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
