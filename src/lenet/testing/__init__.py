"""Code shared by lenet's tests and benchmarks: fuzzing classes, a live-server harness, what a figure ran on.

Like `numpy.testing`, it is imported by module (`from lenet.testing.fuzz_cases import CLASSES`); `import
lenet` does not load it. It runs from a source checkout, where the example pictures lie beside `src/`.
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_PNG = Path(__file__).resolve().parents[3] / "examples" / "seven.png"
