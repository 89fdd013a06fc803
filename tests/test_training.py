import json
import math
import os
import time
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lenet.results import Compiled, StepLogged, TrainingStarted, Validated
from lenet.checkpoint import list_checkpoints, read_checkpoint, resolve_recipe
from lenet.errors import LenetError
from lenet.execution import CUBLAS_DETERMINISTIC_WORKSPACE, Execution, deterministic_mode
from lenet.recipes import Recipe, get_recipe, override
from lenet.models import build_model, l2_weights
from lenet.training import (TrainingDiverged, WeightAverage, add_l2_gradient, decayed_learning_rate, ema_decay_at,
                            l2_penalty, one_cycle_learning_rate, train)


def test_exponential_decay_matches_hand_computed_values():
    assert decayed_learning_rate(0.8, 0.99, 550, 549, staircase=True) == 0.8
    assert math.isclose(decayed_learning_rate(0.8, 0.99, 550, 550, staircase=True), 0.792)
    assert math.isclose(decayed_learning_rate(0.8, 0.99, 550, 1650, staircase=True), 0.8 * 0.970299)
    assert math.isclose(decayed_learning_rate(0.8, 0.99, 550, 275, staircase=False), 0.8 * math.sqrt(0.99))
    assert decayed_learning_rate(0.01, 1.0, 1, 10_000, staircase=False) == 0.01


def test_one_cycle_rises_linearly_then_falls_to_near_zero():
    rates = [one_cycle_learning_rate(1.0, 0.25, 100, step) for step in range(100)]
    assert rates[0] == 1 / 25 and rates[24] == 1.0           # 25 warm-up steps, peak reached on the last
    assert math.isclose(rates[25], 75 / 75) and math.isclose(rates[62], 38 / 75)
    assert math.isclose(rates[99], 1 / 75) and rates == sorted(rates[:25]) + sorted(rates[25:], reverse=True)


def test_ema_decay_warms_up_like_tensorflow():
    assert ema_decay_at(0.99, 0) == 0.1          # (1 + 0) / (10 + 0)
    assert ema_decay_at(0.99, 10) == 0.55        # 11 / 20
    assert ema_decay_at(0.99, 890) == 0.99       # 891 / 900 = 0.99 exactly
    assert ema_decay_at(0.99, 100_000) == 0.99


def test_l2_penalty_is_rate_times_half_the_sum_of_squares():
    weights = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    assert math.isclose(l2_penalty(weights, 0.1).item(), 0.1 * (1 + 4 + 9) / 2, rel_tol=1e-6)


def test_l2_gradient_added_after_backward_equals_the_penalty_in_the_loss():
    torch.manual_seed(0)
    model, inputs = build_model("tutorial-cnn").eval(), torch.rand(4, 1, 28, 28)
    (model(inputs).sum() + l2_penalty(l2_weights(model), 0.5)).backward()
    in_loss = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    model(inputs).sum().backward()
    without = [p.grad.clone() for p in model.parameters()]
    add_l2_gradient(l2_weights(model), 0.5)
    added = [p.grad for p in model.parameters()]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(in_loss, added))
    # and it did add something, to the fully connected weights only
    changed = [not torch.equal(a, b) for a, b in zip(without, added)]
    assert changed == [p is model.fc1.weight or p is model.fc2.weight for p in model.parameters()]


def test_weight_average_follows_the_shadow_formula():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    average = WeightAverage(model)
    with torch.no_grad():
        model.weight.fill_(3.0)
    average.update(decay=0.5)  # 0.5 * 1 + 0.5 * 3 = 2
    with torch.no_grad():
        model.weight.fill_(0.0)
    average.update(decay=0.75)  # 0.75 * 2 + 0.25 * 0 = 1.5
    assert average.model.weight.item() == 1.5 and model.weight.item() == 0.0


def test_weight_average_averages_batchnorm_statistics_and_copies_counters():
    model = nn.BatchNorm1d(2)
    average = WeightAverage(model)
    model.train()
    model(torch.tensor([[4.0, 8.0], [6.0, 12.0]]))  # running_mean moves 0.1 toward (5, 10)
    average.update(decay=0.5)
    assert torch.allclose(average.model.running_mean, 0.5 * torch.tensor([0.5, 1.0]))
    assert average.model.num_batches_tracked.item() == 1


def _fast(recipe_name, **changes):
    return override(get_recipe(recipe_name), **{"total_steps": 30, "batch_size": 20, "log_every_steps": 7,
                                                "eval_every_steps": 1000, "checkpoint_every_steps": 1000,
                                                **changes})


@pytest.mark.parametrize("recipe", [
    _fast("tutorial-cnn"),                                       # SGD + decay + L2 + EMA + dropout
    _fast("deep-mnist"),                                         # Adam state, dropout
    _fast("mlp-ema", optimizer="momentum", learning_rate=0.05),  # momentum buffers
    _fast("best", augment="elastic"),      # BatchNorm statistics, distortions, one-cycle, smoothing, EMA
])
def test_interrupted_and_resumed_run_ends_with_identical_weights(tmp_path, synthetic, recipe):
    train(recipe, tmp_path / "straight", synthetic)
    calls = []
    first = train(recipe, tmp_path / "resumed", synthetic, stop_requested=lambda: calls.append(1) or len(calls) == 13)
    assert first["step"] == 13 and list_checkpoints(tmp_path / "resumed") == [13]
    train(recipe, tmp_path / "resumed", synthetic)
    meta_a, weights_a, state_a = read_checkpoint(tmp_path / "straight")
    meta_b, weights_b, state_b = read_checkpoint(tmp_path / "resumed")
    assert meta_a.step == meta_b.step == 30
    assert weights_a.keys() == weights_b.keys() and all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_training_reports_logs_validation_and_test(tmp_path, synthetic):
    events = []
    result = train(_fast("mlp-ema", learning_rate=0.1, eval_every_steps=10), tmp_path, synthetic, report=events.append)
    logs = [e for e in events if isinstance(e, StepLogged)]
    assert [e.step for e in logs] == [1, 7, 14, 21, 28, 30]
    assert all(e.total_loss > e.cross_entropy > 0 for e in logs)  # L2 adds to the cross-entropy
    assert math.isclose(logs[-1].learning_rate, 0.1)  # step 29 < 550: first decay period
    assert [e.step for e in events if isinstance(e, Validated)] == [10, 20, 30]
    assert result["test_accuracy"] > 0.5  # the synthetic classes are easy


def test_train_on_validation_trains_on_the_validation_images_too_and_skips_validation(tmp_path, synthetic):
    # One batch of all 750 training and validation images exists only when none is held out.
    with pytest.raises(LenetError, match="batch_size 750 exceeds the 600 training examples"):
        train(_fast("mlp-ema", batch_size=750, total_steps=2), tmp_path / "held-out", synthetic)
    events = []
    result = train(_fast("mlp-ema", batch_size=750, total_steps=2, eval_every_steps=1, train_on_validation=True),
                   tmp_path / "all", synthetic, report=events.append)
    assert result["step"] == 2 and "validation_accuracy" not in result and "test_accuracy" in result
    assert not [e for e in events if isinstance(e, Validated)]


def test_non_finite_loss_stops_naming_the_step_and_keeps_checkpoints(tmp_path, synthetic):
    # A step size far too large for a summed loss overflows the weights within a few steps.
    recipe = _fast("mlp-ema", learning_rate=1e15, loss_reduction="sum", total_steps=200,
                   checkpoint_every_steps=1, log_every_steps=50)
    with pytest.raises(TrainingDiverged, match=r"at step \d+ .*Lower --learning-rate") as error:
        train(recipe, tmp_path, synthetic)
    bad_step = int(str(error.value).split("at step ")[1].split()[0])
    kept = list_checkpoints(tmp_path)
    assert kept and kept[-1] < bad_step
    _, weights, _ = read_checkpoint(tmp_path)
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_deterministic_mode_is_put_back_when_training_fails_before_its_first_step(tmp_path, synthetic, monkeypatch):
    import lenet.training as training
    from torch._inductor import config as inductor_config

    def failing_warm_up(*args, **kwargs):
        raise RuntimeError("compilation failed")

    monkeypatch.setattr(training, "_compile_warm_up", failing_warm_up)
    with pytest.raises(RuntimeError, match="compilation failed"):
        train(_fast("mlp-ema", total_steps=5), tmp_path, synthetic, tensorboard=False,
              execution=Execution(compile=True, deterministic=True))
    assert not torch.are_deterministic_algorithms_enabled()
    assert not inductor_config.fallback_random


def test_deterministic_mode_on_cuda_fixes_cublas_workspace_unless_set(monkeypatch):
    # Without CUBLAS_WORKSPACE_CONFIG, PyTorch refuses CUDA matrix products in deterministic mode.
    # Only the environment and the switches are involved, so this runs without a GPU.
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    with deterministic_mode(torch.device("cpu"), compiled=False):
        pass
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ  # a CPU run leaves the environment alone
    with deterministic_mode(torch.device("cuda"), compiled=False):
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_DETERMINISTIC_WORKSPACE
        assert torch.are_deterministic_algorithms_enabled()
    assert not torch.are_deterministic_algorithms_enabled()
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's own choice is kept
    with deterministic_mode(torch.device("cuda"), compiled=False):
        pass
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_resume_refuses_a_changed_recipe_but_may_extend_steps(tmp_path, synthetic):
    recipe = _fast("mlp-ema", total_steps=5)
    train(recipe, tmp_path, synthetic)
    with pytest.raises(LenetError, match="learning_rate"):
        train(override(recipe, learning_rate=0.5), tmp_path, synthetic)
    extended = resolve_recipe(tmp_path, None, total_steps=8)
    assert extended.learning_rate == recipe.learning_rate
    assert train(extended, tmp_path, synthetic)["step"] == 8


def test_a_second_run_into_a_directory_in_training_is_refused_and_the_first_goes_on(tmp_path, synthetic):
    recipe = _fast("mlp-ema", total_steps=10)
    refusals = []

    def start_another_run() -> bool:  # called by the first run after each of its steps
        if not refusals:
            with pytest.raises(LenetError) as refused:
                train(recipe, tmp_path, synthetic)
            refusals.append(str(refused.value))
        return False

    assert train(recipe, tmp_path, synthetic, stop_requested=start_another_run)["step"] == 10
    assert refusals == [f"{tmp_path}: another training run is writing into this directory (process {os.getpid()}); "
                        f"wait for it to end or use another --model-dir"]
    assert list_checkpoints(tmp_path) == [10]
    assert train(override(recipe, total_steps=12), tmp_path, synthetic)["step"] == 12  # released when it ended
    assert (tmp_path / "train.lock").read_text() == ""  # names no process when none holds it


def test_the_fast_recipe_reaches_99_percent_on_real_mnist_in_one_pass(mnist_model_dir):
    # 99.17-99.36% over ten seeds on one CPU (docs/speed.md); other CPUs round differently, hence 98.5%.
    _, result = mnist_model_dir
    assert result["step"] == 214 == get_recipe("fast").total_steps and result["test_accuracy"] > 0.985


def _final_weights(model_dir):
    return read_checkpoint(model_dir)[1]


def test_layout_and_bf16_change_rounding_only(tmp_path, synthetic):
    recipe = _fast("fast")  # convolutions, BatchNorm and Adam, in seconds
    train(recipe, tmp_path / "nhwc", synthetic, tensorboard=False)
    train(recipe, tmp_path / "nchw", synthetic, tensorboard=False, execution=Execution(channels_last=False))
    bf16 = train(recipe, tmp_path / "bf16", synthetic, tensorboard=False, execution=Execution(precision="bf16"))
    nhwc, nchw = _final_weights(tmp_path / "nhwc"), _final_weights(tmp_path / "nchw")
    # Adam amplifies rounding differences in near-zero gradients; 1e-3 is still far below the weights (~0.2).
    assert all(torch.allclose(nhwc[k], nchw[k], atol=1e-3) for k in nhwc)
    assert bf16["test_accuracy"] > 0.5  # bf16 trains too (within rounding of a 30-step run it learns)
    assert all(torch.isfinite(w).all() for w in _final_weights(tmp_path / "bf16").values())


def test_compiled_deterministic_training_matches_eager(tmp_path, synthetic):
    recipe = _fast("mlp-ema", learning_rate=0.1, total_steps=15)
    events = []
    train(recipe, tmp_path / "eager", synthetic, tensorboard=False)
    train(recipe, tmp_path / "compiled", synthetic, report=events.append, tensorboard=False,
          execution=Execution(compile=True, deterministic=True))
    eager, compiled = _final_weights(tmp_path / "eager"), _final_weights(tmp_path / "compiled")
    assert all(torch.allclose(eager[k], compiled[k], atol=1e-5) for k in eager)
    # Compilation is reported right after the start, before any training step.
    assert [type(e) for e in events][:2] == [TrainingStarted, Compiled] and events[1].seconds > 0


def test_training_time_excludes_evaluation_and_checkpoints(tmp_path, synthetic, monkeypatch):
    import lenet.training as training
    # Training's clock jumps 1,000 s during each evaluation: none of those seconds may count as training.
    evaluation_s = [0.0]
    monkeypatch.setattr(training, "time", SimpleNamespace(perf_counter=lambda: time.perf_counter() + evaluation_s[0]))
    slow_evaluate = training.evaluate

    def evaluate_slowly(*args, **kwargs):
        evaluation_s[0] += 1000.0
        return slow_evaluate(*args, **kwargs)

    monkeypatch.setattr(training, "evaluate", evaluate_slowly)
    result = train(_fast("mlp-ema", learning_rate=0.1, total_steps=10), tmp_path, synthetic, tensorboard=False)
    assert evaluation_s[0] >= 1000.0  # the final test evaluation ran on the jumping clock
    assert 0 < result["train_seconds"] < 1000.0 and result["compile_seconds"] == 0


def test_fast_recipe_runs_its_one_cycle_over_the_steps_it_is_given(tmp_path, synthetic):
    # Cut to 30 steps, the one-cycle is stretched over them (learning real digits: the fixture's 99% above).
    events = []
    train(_fast("fast"), tmp_path, synthetic, report=events.append, tensorboard=False)
    rates = [e.learning_rate for e in events if isinstance(e, StepLogged)]
    assert rates.index(max(rates)) not in (0, len(rates) - 1)  # one cycle: up, then down
    assert max(rates) <= get_recipe("fast").learning_rate and rates[-1] < rates[0] * 10


def test_unknown_precision_is_refused():
    with pytest.raises(LenetError, match="precision"):
        Execution(precision="fp8")


def test_auto_precision_is_bf16_only_where_the_cpu_has_bf16_arithmetic(monkeypatch):
    from lenet.execution import resolve_precision
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert resolve_precision(Execution(precision="auto"), cpu) == (Execution(precision="fp32"),
                                                                   "fp32 (auto: no bf16 arithmetic on this CPU)")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert resolve_precision(Execution(precision="auto"), cpu) == (Execution(precision="bf16"),
                                                                   "bf16 (auto: AVX512-BF16)")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert resolve_precision(Execution(precision="auto"), cpu)[1] == "bf16 (auto: AMX)"
    # An explicit choice is kept whatever the hardware.
    assert resolve_precision(Execution(precision="fp32"), cpu) == (Execution(precision="fp32"), "fp32")


def test_the_start_event_says_which_precision_auto_chose(tmp_path, synthetic, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    events = []
    train(_fast("mlp-ema", total_steps=2), tmp_path, synthetic, report=events.append, tensorboard=False,
          execution=Execution(precision="auto"))
    assert isinstance(events[0], TrainingStarted) and events[0].precision.startswith("fp32 (auto")


def test_fast_recipe_beats_85_percent_on_fashion_mnist(fashion_model_dir):
    # Fashion-MNIST's README lists about 88-93% for classic methods and small CNNs trained fully.
    model_dir, result = fashion_model_dir
    assert result["test_accuracy"] > 0.85
    assert get_recipe("fast").dataset == "mnist"  # the recipe is unchanged; the run chose the data set
    assert Recipe.from_dict(json.loads((model_dir / "recipe.json").read_text()), "recipe.json").dataset == "fashion-mnist"


def test_a_recipe_of_one_data_set_refuses_anothers_images(tmp_path, synthetic):
    recipe = override(get_recipe("mlp-ema"), dataset="fashion-mnist", total_steps=2)
    with pytest.raises(LenetError, match="^recipe field dataset is fashion-mnist, the data given is mnist$"):
        train(recipe, tmp_path, synthetic)
    assert not any(tmp_path.iterdir())


def test_adam_takes_the_recipes_betas_and_the_seed_recipes_keep_tensorflows():
    from lenet.training import build_optimizer
    from lenet.models import build_model
    fast = build_optimizer(get_recipe("fast"), build_model("fast-cnn"))
    seed_001 = build_optimizer(get_recipe("deep-mnist"), build_model("deep-mnist"))
    assert fast.param_groups[0]["betas"] == (0.7, 0.9)
    assert seed_001.param_groups[0]["betas"] == (0.9, 0.999)  # tf.train.AdamOptimizer's defaults
