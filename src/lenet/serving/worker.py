"""The inference worker, which groups concurrent requests into one forward pass."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np


class InferenceWorker:
    """One task runs the network; requests that arrive while it is busy are batched into its next pass.

    A request past its compute deadline stops waiting (its future is cancelled) and is skipped when its
    turn comes: this is where its work is bounded, since a pass handed to a thread cannot be stopped.
    """

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], max_batch: int):
        self.predict, self.max_batch = predict, max_batch
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.thread: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        # A thread of its own: a pass never waits behind pictures being decoded in the shared pool.
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.thread:
            self.thread.shutdown(wait=False)

    async def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """Probabilities (N, classes) for float (N, 28, 28) inputs."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((inputs, future))
        return await future

    async def _run(self) -> None:
        carried = None  # a request taken from the queue that would have made the last pass too large
        while True:
            first = carried or await self.queue.get()
            carried = None
            if first[1].done():
                continue
            waiting, size = [first], len(first[0])
            # Each request holds at most max_batch images (the handlers refuse more), so each pass does too.
            while not self.queue.empty():
                request = self.queue.get_nowait()
                if request[1].done():
                    continue
                if size + len(request[0]) > self.max_batch:
                    carried = request
                    break
                waiting.append(request)
                size += len(request[0])
            try:
                probabilities = await asyncio.get_running_loop().run_in_executor(
                    self.thread, self.predict, np.concatenate([w[0] for w in waiting]))
            except Exception as error:  # hand the failure to every waiting request
                for _, future in waiting:
                    if not future.done():
                        future.set_exception(error)
                continue
            offset = 0
            for inputs, future in waiting:
                if not future.done():
                    future.set_result(probabilities[offset:offset + len(inputs)])
                offset += len(inputs)
