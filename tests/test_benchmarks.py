"""The benchmark scripts run end to end (a few steps each) and print the JSON they promise."""

import json
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _run(script: str, *args: str) -> dict:
    completed = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                               timeout=300, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_speedrun_reports_each_seed_and_the_mean(mnist, tmp_path):
    result = _run("speedrun.py", "--recipe", "fast", "--steps", "6", "--seeds", "2", "--target", "0.5",
                  "--model", "bn-cnn-wide", "--keep", str(tmp_path))
    accuracies = [run["test_accuracy"] for run in result["runs"]]
    assert [run["seed"] for run in result["runs"]] == [0, 1] and result["steps"] == 6
    assert result["model"] == json.loads((tmp_path / "seed-1" / "recipe.json").read_text())["model"] == "bn-cnn-wide"
    assert abs(result["mean_test_accuracy"] - sum(accuracies) / 2) < 1e-12
    assert all(run["train_s"] > 0 for run in result["runs"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed-0", "seed-1"]


def test_reproduce_reports_each_recipe_with_its_validation_curve(mnist, tmp_path):
    completed = subprocess.run([sys.executable, str(BENCHMARKS / "reproduce.py"), "--recipes", "mlp-ema,cnn-adam",
                                "--steps", "20", "--out-dir", str(tmp_path)],
                               capture_output=True, text=True, timeout=300, check=True)
    results = [json.loads(line) for line in completed.stdout.strip().splitlines()]
    assert [r["recipe"] for r in results] == ["mlp-ema", "cnn-adam"]
    assert all(r["steps"] == 20 and r["full_schedule"] is False for r in results)
    # cnn-adam validates every 100 steps, so a 20-step run validates once, at its end.
    assert all(list(r["validation_curve"]) == ["20"] for r in results)
    assert results[0]["validation_curve"]["20"] == results[0]["validation_accuracy"]
    assert "mlp-ema: step 20/20, validation accuracy" in completed.stderr  # progress of long runs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn-adam", "mlp-ema"]


def test_throughput_measures_training_and_inference(mnist):
    result = _run("throughput.py", "--recipe", "fast", "--model", "mlp", "--steps", "10")
    assert result["model"] == "mlp" and result["train_images_per_s"] > 0 and result["infer_images_per_s"] > 0
    assert result["infer_onnx_images_per_s"] > 0  # the same weights exported and run by onnxruntime
    assert result["precision"] == "fp32" and result["channels_last"] is True and result["cpu"]


def test_conv_kernels_reports_each_kernel_after_checking_they_agree():
    result = _run("conv_kernels.py", "--batch", "4", "--repeats", "1")
    assert set(result["gflop_per_s"]) == {"torch_nchw", "torch_channels_last", "onnxruntime", "torch_mm_2048"}
    assert all(rate > 0 for rate in result["gflop_per_s"].values()) and result["batch"] == 4


def test_pytorch_baseline_is_the_tutorial_network_with_its_initialization():
    sys.path.insert(0, str(BENCHMARKS / "baselines"))
    try:
        import torch_dataloader as baseline
    finally:
        sys.path.pop(0)
    from lenet.models import build_model
    ours = dict(build_model("tutorial-cnn").named_parameters())
    theirs = [p for p in baseline.build_model().parameters()]
    assert [tuple(p.shape) for p in ours.values()] == [tuple(p.shape) for p in theirs]
    for (name, mine), other in zip(ours.items(), theirs):
        if name.endswith("weight"):  # truncated normal, stddev 0.1, cut at 2 stddev (stddev ~0.088)
            assert other.abs().max() <= 0.2 and 0.08 < other.std().item() < 0.096
        else:
            assert other.detach().equal(mine.detach())


def test_pytorch_baseline_trains_and_reports(mnist):
    result = _run("baselines/torch_dataloader.py", "--steps", "40")
    assert result["implementation"] == "pytorch-dataloader" and result["train_images_per_s"] > 0
    assert result["test_accuracy"] > 0.5  # the tutorial's start: ~72% after 40 steps


def test_compare_cpu_puts_lenet_beside_the_pytorch_baseline(mnist, tmp_path):
    command = [sys.executable, str(BENCHMARKS / "compare_cpu.py"), "--rounds", "1", "--variants", "fp32",
               "--infer-batch", "500", "--tf-python", str(tmp_path / "no-tensorflow")]
    too_short = subprocess.run([*command, "--steps", "5"], capture_output=True, text=True, timeout=300)
    assert too_short.returncode != 0  # a failing child is named with its reason, not a traceback
    assert too_short.stderr.strip().splitlines()[-1].endswith("--steps must be more than 20, the untimed warm-up")
    result = _run("compare_cpu.py", *command[2:], "--steps", "30")
    assert set(result["results"]) == {"lenet-fp32", "pytorch-dataloader"}
    ours, theirs = result["results"]["lenet-fp32"], result["results"]["pytorch-dataloader"]
    ratio = result["ratios"]["lenet-fp32 / pytorch-dataloader"]
    assert ratio["train"] == round(ours["train_images_per_s"] / theirs["train_images_per_s"], 2)
    assert ratio["infer_onnx"] == round(ours["infer_onnx_images_per_s"] / theirs["infer_images_per_s"], 2)
    assert "make bench-setup" in result["notes"][0]  # no TensorFlow here: said, not silently dropped


def test_benchmark_options_named_in_the_readme_exist(capsys, monkeypatch):
    # The README's and docs' commands are how the GPU figures get measured: a wrong option costs a lent GPU's time.
    pages = [BENCHMARKS.parent / "README.md", *sorted((BENCHMARKS.parent / "docs").glob("*.md"))]
    readme = "\n".join(page.read_text() for page in pages)
    named: dict[str, set[str]] = {}
    for script, rest in re.findall(r"benchmarks/([a-z_/]+\.py)([^`|#\n]*)", readme):
        named.setdefault(script, set()).update(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest))
    assert {"speedrun.py", "throughput.py", "reproduce.py", "compare_cpu.py"} <= set(named)
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    for script, options in named.items():
        if script.startswith("baselines/tf_"):
            continue  # needs TensorFlow (its own environment, `make bench-setup`)
        monkeypatch.setattr(sys, "argv", [script, "--help"])
        with pytest.raises(SystemExit):
            runpy.run_path(str(BENCHMARKS / script), run_name="__main__")
        help_text = capsys.readouterr().out
        offered = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", help_text))
        assert "usage:" in help_text and options <= offered, (script, sorted(options - offered))
