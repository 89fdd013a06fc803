"""The benchmark scripts run end to end (a few steps each) and print the JSON they promise; their own
functions are read from the scripts by path (runpy), as the scripts are run."""

import json
import re
import runpy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _script(script: str) -> SimpleNamespace:
    """The names SCRIPT defines, run by path without its `__main__` block."""
    return SimpleNamespace(**runpy.run_path(str(BENCHMARKS / script)))


def _run(script: str, *args: str) -> dict:
    completed = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                               timeout=300, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_speedrun_reports_each_seed_and_puts_the_public_recipe_beside_it(mnist, tmp_path):
    result = _run("speed/speedrun.py", "--recipe", "fast", "--steps", "6", "--seeds", "2", "--target", "0.5",
                  "--model", "mlp", "--keep", str(tmp_path), "--baseline", "--baseline-images", "600")
    ours, theirs = result["runs"], result["baseline"]["runs"]
    accuracies = [run["test_accuracy"] for run in ours]
    assert [run["seed"] for run in theirs] == [run["seed"] for run in ours] == [0, 1] and result["steps"] == 6
    assert result["model"] == json.loads((tmp_path / "seed-1" / "recipe.json").read_text())["model"] == "mlp"
    assert abs(result["mean_test_accuracy"] - sum(accuracies) / 2) < 1e-12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed-0", "seed-1"]
    assert result["baseline"]["train_images"] == 600
    assert result["speedup_vs_baseline"] == round(result["baseline"]["median_train_s"] / result["median_train_s"], 2)
    # Every phase is reported apart from the steps, for both.
    assert all(run["train_s"] > 0 for run in ours + theirs)
    assert all(run[key] >= 0 for run in ours for key in ("setup_s", "evaluate_s", "checkpoint_s"))
    assert all(0 < run["first_step_s"] < run["train_s"] for run in ours)  # the warm-up step, part of the steps
    assert all(run[key] >= 0 for run in theirs for key in ("data_s", "model_s", "test_s"))
    assert result["imports_s"] > 0 and result["data_load_s"] > 0
    assert all(0 <= run["test_accuracy"] <= 1 for run in theirs)
    assert {"cpu_family", "cpu_model_number", "cpu_flags"} <= set(result)


def test_the_public_recipe_is_ported_as_published(mnist):
    baseline = _script("baselines/train_mnist_fast.py")
    model = baseline.Net()
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(24, 1, 5, 5), (24,), (32, 24, 3, 3), (32,), (256, 800), (256,), (10, 256), (10,)]
    import torch
    images, labels = baseline.prepare(mnist.train_images[:1000], mnist.train_labels[:1000], seed=3)
    # Normalized with the recipe's constants and shuffled once, images and labels alike.
    restored = ((images * baseline.STD + baseline.MEAN) * 255).round().squeeze(1).to(torch.uint8)
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(restored, mnist.train_images[:1000][order]) and torch.equal(labels, mnist.train_labels[:1000][order])
    # One epoch of 1,000 images at batch 256 is four steps, the last one partial, on the one-cycle rate.
    seen, rates = [], []
    forward = model.forward
    model.forward = lambda x: seen.append(len(x)) or forward(x)
    from torch.optim.optimizer import register_optimizer_step_pre_hook
    hook = register_optimizer_step_pre_hook(lambda optimizer, args, kwargs: rates.append(optimizer.param_groups[0]["lr"]))
    try:
        baseline.train(model, images, labels)
    finally:
        hook.remove()
    assert seen == [256, 256, 256, 232]
    # OneCycleLR's defaults: from max_lr / 25 up toward max_lr over 30% of the steps, then down.
    assert rates[0] == pytest.approx(0.01 / 25) and rates[0] < rates[1] <= 0.01 and rates[-1] < rates[1]
    result = _run("baselines/train_mnist_fast.py", "--seeds", "1", "--train-images", "2000")
    assert result["train_images"] == 2000 and result["runs"][0]["test_accuracy"] > 0.5


def test_reproduce_reports_each_recipe_with_its_validation_curve(mnist, tmp_path):
    completed = subprocess.run([sys.executable, str(BENCHMARKS / "accuracy" / "reproduce.py"),
                                "--recipes", "mlp-ema,lenet5", "--steps", "20", "--out-dir", str(tmp_path)],
                               capture_output=True, text=True, timeout=300, check=True)
    results = [json.loads(line) for line in completed.stdout.strip().splitlines()]
    assert [r["recipe"] for r in results] == ["mlp-ema", "lenet5"]
    assert all(r["steps"] == 20 and r["full_schedule"] is False for r in results)
    # Both validate every 1,000 steps, so a 20-step run validates once, at its end.
    assert all(list(r["validation_curve"]) == ["20"] for r in results)
    assert results[0]["validation_curve"]["20"] == results[0]["validation_accuracy"]
    assert "mlp-ema: step 20/20, validation accuracy" in completed.stderr  # progress of long runs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lenet5", "mlp-ema"]


def test_throughput_measures_training_and_inference(mnist):
    result = _run("speed/throughput.py", "--recipe", "fast", "--model", "mlp", "--steps", "10")
    assert result["model"] == "mlp" and result["train_images_per_s"] > 0 and result["infer_images_per_s"] > 0
    assert result["infer_onnx_images_per_s"] > 0  # the same weights exported and run by onnxruntime
    assert result["precision"] == "fp32" and result["channels_last"] is True and result["cpu"]


def test_conv_kernels_reports_each_kernel_after_checking_they_agree():
    result = _run("speed/conv_kernels.py", "--batch", "4", "--repeats", "1")
    assert set(result["gflop_per_s"]) == {"torch_nchw", "torch_channels_last", "onnxruntime", "torch_mm_2048"}
    assert all(rate > 0 for rate in result["gflop_per_s"].values()) and result["batch"] == 4


def test_pytorch_baseline_is_the_tutorial_network_with_its_initialization():
    baseline = _script("baselines/torch_dataloader.py")
    from lenet.models import build_model
    ours = dict(build_model("tutorial-cnn").named_parameters())
    theirs = [p for p in baseline.build_model().parameters()]
    assert [tuple(p.shape) for p in ours.values()] == [tuple(p.shape) for p in theirs]
    for (name, mine), other in zip(ours.items(), theirs):
        if name.endswith("weight"):  # truncated normal, stddev 0.1, cut at 2 stddev (stddev ~0.088)
            assert other.abs().max() <= 0.2 and 0.08 < other.std().item() < 0.096
        else:
            assert other.detach().equal(mine.detach())


def test_compare_cpu_puts_lenet_beside_the_pytorch_baseline(mnist, tmp_path):
    command = [sys.executable, str(BENCHMARKS / "speed" / "compare_cpu.py"), "--rounds", "1", "--variants", "fp32",
               "--infer-batch", "500", "--tf-python", str(tmp_path / "no-tensorflow")]
    too_short = subprocess.run([*command, "--steps", "5"], capture_output=True, text=True, timeout=300)
    assert too_short.returncode != 0  # a failing child is named with its reason, not a traceback
    assert too_short.stderr.strip().splitlines()[-1].endswith("--steps must be more than 20, the untimed warm-up")
    result = _run("speed/compare_cpu.py", *command[2:], "--steps", "40")
    assert set(result["results"]) == {"lenet-fp32", "pytorch-dataloader"}
    ours, theirs = result["results"]["lenet-fp32"], result["results"]["pytorch-dataloader"]
    assert theirs["train_images_per_s"] > 0 and theirs["test_accuracy"] > 0.5  # the tutorial's start: ~72% at 40 steps
    ratio = result["ratios"]["lenet-fp32 / pytorch-dataloader"]
    assert ratio["train"] == round(ours["train_images_per_s"] / theirs["train_images_per_s"], 2)
    assert ratio["infer_onnx"] == round(ours["infer_onnx_images_per_s"] / theirs["infer_images_per_s"], 2)
    assert "make bench-setup" in result["notes"][0]  # no TensorFlow here: said, not silently dropped
    # Which implementation wins depends on the CPU kind, so the figures carry it.
    assert {"cpu_family", "cpu_model_number", "cpu_flags", "torch_cpu_capability", "threads"} <= set(result["machine"])


def test_bf16_inference_gives_the_classes_of_fp32(mnist_model_dir):
    model_dir, _ = mnist_model_dir
    result = _run("accuracy/bf16_agreement.py", "--model-dir", str(model_dir), "--images", "500")
    assert result["test_images"] == 500
    assert result["different_classes"] == round((1 - result["same_class_fraction"]) * 500)
    assert result["same_class_fraction"] >= 0.99  # rounding moves only near-ties
    assert 0 < result["max_abs_logit_difference"] < 1  # bf16 did run: the logits differ, a little
    assert abs(result["bf16_test_accuracy"] - result["fp32_test_accuracy"]) <= 0.01


def test_benchmark_options_named_in_the_readme_exist(capsys, monkeypatch):
    # The README's and docs' commands are how the GPU figures get measured: a wrong option costs a lent GPU's time.
    pages = [BENCHMARKS.parent / "README.md", BENCHMARKS / "README.md",
             *sorted((BENCHMARKS.parent / "docs").glob("*.md"))]
    readme = "\n".join(page.read_text() for page in pages)
    named: dict[str, set[str]] = {}
    for script, rest in re.findall(r"benchmarks/([a-z_/]+\.py)([^`|#\n]*)", readme):
        named.setdefault(script, set()).update(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest))
    assert {"speed/speedrun.py", "speed/throughput.py", "accuracy/reproduce.py", "speed/compare_cpu.py"} <= set(named)
    for script, options in named.items():
        if script.startswith("baselines/tf_"):
            continue  # needs TensorFlow (its own environment, `make bench-setup`)
        monkeypatch.setattr(sys, "argv", [script, "--help"])
        with pytest.raises(SystemExit):
            runpy.run_path(str(BENCHMARKS / script), run_name="__main__")
        help_text = capsys.readouterr().out
        offered = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", help_text))
        assert "usage:" in help_text and options <= offered, (script, sorted(options - offered))


def test_gpu_suite_dry_run_runs_every_part_and_its_checks_pass(mnist, tmp_path):
    # The GPU run is one call of a few lent minutes: every part's commands must work before it.
    completed = subprocess.run([sys.executable, str(BENCHMARKS / "gpu" / "gpu_suite.py"), "--dry-run",
                                "--out", str(tmp_path)], capture_output=True, text=True, timeout=600, check=True)
    lines = [json.loads(line) for line in (tmp_path / "gpu_suite.jsonl").read_text().splitlines()]
    parts = {line["part"]: line for line in lines if line["event"] == "part"}
    assert list(parts) == ["checks", "fast", "tutorial-cnn", "best", "ensemble-3", "throughput", "best-more",
                           "ensemble-5", "seed-recipes"]
    assert {name: part["status"] for name, part in parts.items()} == dict.fromkeys(parts, "ok")
    results = {name: part["results"] for name, part in parts.items()}
    assert {r["check"]: r["passed"] for r in results["checks"]} == \
        {"deterministic": True, "resume": True, "cuda-graph-bn-ema": True}
    assert [len(results[n][-1]["runs"]) for n in ("fast", "best", "best-more")] == [2, 2, 1]  # seeds
    assert [len(results[n][-1]["members"]) for n in ("ensemble-3", "ensemble-5")] == [2, 3]
    # The dry run drops --compile, so throughput's compiled pair is not repeated there.
    assert [(r["precision"], r["train_images_per_s"] > 0) for r in results["throughput"]] == \
        [("fp32", True), ("bf16", True)]
    assert [r["recipe"] for r in results["seed-recipes"]] == ["cnn-adam", "mlp-ema", "deep-mnist", "layers-cnn",
                                                              "lenet5"]
    # Each result also went out on its own line the moment it came, for a run cut off before its part ends.
    assert sum(line["event"] == "result" for line in lines) == sum(map(len, results.values()))
    assert lines[0]["event"] == "environment" and lines[0]["data_dir"] and lines[-1]["event"] == "summary"
    assert "PASS cuda-graph-bn-ema" in completed.stdout and (tmp_path / "gpu_suite_summary.txt").exists()


def test_gpu_suite_plans_within_its_budget():
    gpu_suite = _script("gpu/gpu_suite.py")
    part = {p.name: p for p in gpu_suite.PARTS}
    statuses = {"best": "ok", "best-more": "failed"}
    # An optional part starts only if its expected seconds fit; a required one runs until the deadline.
    assert gpu_suite.skip_reason(part["best-more"], 400, statuses, 420, 540).startswith("would exceed the budget")
    assert gpu_suite.skip_reason(part["best-more"], 0, statuses, 420, 540) is None
    assert gpu_suite.skip_reason(part["throughput"], 500, statuses, 420, 540) is None
    assert "deadline" in gpu_suite.skip_reason(part["throughput"], 530, statuses, 420, 540)
    assert gpu_suite.skip_reason(part["ensemble-5"], 0, statuses, 420, 540) == "needs part best-more (failed)"
    first, second = list(gpu_suite.SEED_RECIPES_EXPECTED_S.items())[:2]
    assert gpu_suite.fitting_recipes(100, 100 + first[1] + second[1] - 1) == [first[0]]
    # The device has torch 2.11; the package pins 2.13: said, and run anyway.
    assert not gpu_suite.satisfies("2.11.0+cu128", ">=2.13,<2.14")
    assert gpu_suite.satisfies("2.13.0+cpu", ">=2.13,<2.14")


def test_gpu_checks_tell_rounding_from_a_stale_batchnorm_buffer():
    import torch
    gpu_checks = _script("gpu/gpu_checks.py")
    eager = {"raw.conv1.weight": torch.ones(4), "raw.bn1.running_var": torch.full((4,), 0.5),
             "raw.bn1.num_batches_tracked": torch.tensor(40)}
    control = {**eager, "raw.conv1.weight": torch.full((4,), 1.01)}  # a rounding-only change moved it 1%
    within = {**eager, "raw.conv1.weight": torch.full((4,), 1.05)}
    assert gpu_checks.close_to_eager(eager, control, within, 40)["passed"]
    assert not gpu_checks.close_to_eager(eager, control, {**eager, "raw.conv1.weight": torch.full((4,), 1.5)},
                                         40)["passed"]
    # Statistics a graph replay never updated (still the initial 1), or warm-up steps counted as training:
    for stale in ({"raw.bn1.running_var": torch.ones(4)}, {"raw.bn1.num_batches_tracked": torch.tensor(43)}):
        assert not gpu_checks.close_to_eager(eager, control, {**within, **stale}, 40)["passed"]


def test_predict_robustness_reports_every_set_numbers_and_the_clean_check(mnist, mnist_model_dir):
    result = _run("robustness/predict_robustness.py", "--model", str(mnist_model_dir[0]), "--per-set", "4", "--mixed", "6",
                  "--numbers", "2", "--clean-pngs", "8")
    assert list(result["sets"]) == ["canvas", "polarity", "colour", "thick", "thin", "rotation", "noise", "blur",
                                    "gradient", "jpeg", "speck", "line", "mixed"]
    assert result["sets"]["mixed"]["pictures"] == 6 and result["sets"]["noise"]["pictures"] == 4
    for figures in result["sets"].values():
        assert 0 <= figures["accuracy"] <= 1 and figures["of_clean"] == round(figures["accuracy"] / result["clean_accuracy"], 4)
    assert list(result["numbers"]) == ["3", "4", "5", "6"] and result["numbers"]["4"]["strings"] == 2
    assert result["clean_pngs"]["images"] == 8 and set(result["clean_pngs"]) >= {"png_28", "png_112_inverted"}
    assert result["network"] == "fast-cnn" and 0.5 < result["clean_accuracy"] <= 1


def test_throughput_rate_weighs_intervals_by_their_time_after_warm_up():
    throughput = _script("speed/throughput.py")
    # Two warm-up intervals left out; of equal-sized intervals at 1,000 and 250 images/s, the run
    # took 1 s + 4 s per 1,000 images: 400 images/s, not the 625 an average of rates gives.
    assert throughput.steady_rate([50, 60, 1000, 250]) == pytest.approx(400)
    assert throughput.steady_rate([300]) == pytest.approx(300)  # too short for warm-up: all of it


def test_declining_reports_digits_non_digits_and_the_rules_beside_lenets(mnist, synthetic_model_dir):
    result = _run("robustness/declining.py", "--model", str(synthetic_model_dir), "--digits", "20", "--negatives", "20")
    assert {"model", "min_confidence", "digit_pictures", "digit_arrays", "non_digits", "confidence_only",
            "no_decline", "machine", "seconds"} <= set(result)
    assert {"temperature", "own_min_confidence", "has_gate", "recipe", "step"} <= set(result["model"])
    assert result["machine"]["cpu"] and result["machine"]["cpu_family"]
    pictures, arrays = result["digit_pictures"], result["digit_arrays"]
    assert pictures["pictures"] == arrays["arrays"] == 20 and sum(pictures["verdicts"].values()) == 20
    assert pictures["answered"] == pictures["verdicts"]["digit"] / 20
    assert pictures["accuracy_overall"] <= pictures["answered"]  # declined counts as wrong
    assert list(result["non_digits"]) == ["training", "held-out"]
    for family, figures in result["non_digits"].items():
        assert figures["pictures"] == sum(figures["verdicts"].values()) == sum(figures["pictures_by_kind"].values()) == 20
        assert figures["declined"] == 1 - figures["verdicts"]["digit"] / 20
        assert all(s is None or 0 <= s <= 1 for s in figures["declined_by_kind"].values())
        # Threshold 0 declines only what the network never saw: at least as many answered as by the rule.
        seen = sum(figures["verdicts"][v] for v in ("digit", "not a digit", "unsure"))
        answered = result["no_decline"]["non_digits_answered"][family]
        assert 1 - figures["declined"] <= answered == seen / 20
        assert 0 <= result["confidence_only"]["non_digits_declined"][family] <= 1
    assert result["non_digits"]["training"]["seed"] == 100  # not the gate's training seeds, 0 and 1
    baseline = result["confidence_only"]
    assert 0.05 <= baseline["min_confidence"] <= 0.9 and 0 <= baseline["digit_pictures_answered"] <= 1
    assert baseline["validation_digits_answered"] >= 0.995
    assert pictures["answered"] <= result["no_decline"]["digit_pictures_answered"]
