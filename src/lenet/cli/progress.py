"""Progress on the terminal: training's events, and counted tasks (images evaluated, layers drawn).

A bar on a terminal, plain lines otherwise (CI logs). tqdm is imported when a bar is first drawn.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ..recipes import Recipe
from ..results import StepLogged, TrainingEvent, TrainingStarted
from .views import training_event


class TrainingProgress:
    """A progress bar with log lines above it on a terminal; plain lines otherwise (CI logs). The
    lines go to OUT: stdout, or stderr when stdout carries JSON. The bar starts at the start event,
    where training does."""

    def __init__(self, recipe: Recipe, model_dir: str, out: TextIO):
        self.recipe, self.model_dir, self.out = recipe, model_dir, out
        self.bar, self.last_step = None, 0

    def __call__(self, event: TrainingEvent) -> None:
        line = training_event(event, self.recipe, self.model_dir)
        if isinstance(event, TrainingStarted) and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=self.recipe.total_steps, initial=event.step, unit="step", dynamic_ncols=True,
                            leave=False)
        if isinstance(event, (TrainingStarted, StepLogged)):
            if self.bar is not None and isinstance(event, StepLogged):
                self.bar.update(event.step - self.last_step)
            self.last_step = event.step
        if self.bar is not None:
            self.bar.write(line, file=self.out)
        else:
            print(line, file=self.out, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class CountProgress:
    """Progress of a counted task (images evaluated, layers drawn): a bar on a terminal, else a line
    at most every PERIOD seconds and at the end."""

    def __init__(self, label: str, period_s: float = 10.0):
        self.label, self.period_s, self.bar, self.last = label, period_s, None, time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if sys.stderr.isatty():
            if self.bar is None:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=self.label, leave=False, dynamic_ncols=True)
            self.bar.update(done - self.bar.n)
            if done >= total:
                self.bar.close()
                self.bar = None
        elif done >= total or time.monotonic() - self.last >= self.period_s:
            self.last = time.monotonic()
            print(f"{self.label}: {done}/{total}", file=sys.stderr, flush=True)
