"""The benchmark scripts run end to end (a few steps each) and print the JSON they promise."""

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _run(script: str, *args: str) -> dict:
    completed = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                               timeout=300, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_speedrun_reports_each_seed_and_the_mean(mnist, tmp_path):
    result = _run("speedrun.py", "--recipe", "fast", "--steps", "6", "--seeds", "2", "--target", "0.5",
                  "--keep", str(tmp_path))
    accuracies = [run["test_accuracy"] for run in result["runs"]]
    assert [run["seed"] for run in result["runs"]] == [0, 1] and result["steps"] == 6
    assert abs(result["mean_test_accuracy"] - sum(accuracies) / 2) < 1e-12
    assert all(run["train_s"] > 0 for run in result["runs"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed-0", "seed-1"]


def test_throughput_measures_training_and_inference(mnist):
    result = _run("throughput.py", "--recipe", "fast", "--steps", "10")
    assert result["train_images_per_s"] > 0 and result["infer_images_per_s"] > 0
    assert result["precision"] == "fp32" and result["channels_last"] is True and result["cpu"]
