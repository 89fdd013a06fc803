"""Ctrl-C and SIGTERM while training: the first asks for a stop after the current step, a second stops at once."""

from __future__ import annotations

import signal
import sys


class StopRequests:
    """While entered, SIGINT and SIGTERM ask training to stop after its step and save a checkpoint;
    calling this says whether one did. SPEAKS: whether this process says so (in a run of several
    ranks, the others print nothing unless they fail)."""

    def __init__(self, speaks: bool):
        self.speaks = speaks
        self.signum: int | None = None  # the first signal received
        self._previous: dict = {}

    def __enter__(self) -> StopRequests:
        # Ctrl-C, and the SIGTERM of `kill`, job schedulers and containers stopping, save the run.
        self._previous = {signum: signal.signal(signum, self._request) for signum in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def __call__(self) -> bool:
        return self.signum is not None

    def _request(self, signum, frame) -> None:
        if self.signum is not None:  # a second Ctrl-C (or kill) stops at once
            raise KeyboardInterrupt
        self.signum = signum
        if self.speaks:
            print(f"\n{signal.Signals(signum).name}: stopping after this step and saving a checkpoint "
                  f"(Ctrl-C again to abort)", file=sys.stderr)
