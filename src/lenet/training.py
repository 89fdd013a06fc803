"""The training loop, with the TensorFlow formulas it reproduces: decayed learning rate, L2, EMA."""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .augment import distort
from .checkpoint import RECIPE_FILE, claim_model_dir, list_checkpoints, load_weights, read_checkpoint, \
    read_json, save_checkpoint, write_json
from .data import BatchOrder, Mnist, to_float
from .errors import LenetError
from .evaluation import batched_logits, evaluate, metrics_from_logits
from .models import build_model, l2_weights
from .recipes import DEFAULT_RECIPE, Recipe, get_recipe, override
from .tensorboard import MISCLASSIFIED_SHOWN, TrainingEvents

Report = Callable[[dict], None]
PRECISIONS = ("fp32", "bf16")


@dataclasses.dataclass(frozen=True)
class Execution:
    """How a run computes, as opposed to what it learns (the Recipe).

    The same recipe and seed give the same curve whatever these say, up to floating-point
    rounding, so they are not part of the recipe and a run may resume with other settings.
    """
    precision: str = "fp32"       # "bf16": autocast convolutions and matrix products to bfloat16
    channels_last: bool = True    # NHWC activations: the layout oneDNN and cuDNN convolve fastest
    compile: bool = False         # torch.compile the network (one-off compile time, faster steps);
                                  # its dropout masks come from another generator unless deterministic
    deterministic: bool = False   # bitwise-reproducible kernels only (CPU kernels already are)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise LenetError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


class TrainingDiverged(LenetError):
    """The loss became NaN or infinite."""


def decayed_learning_rate(base: float, decay_rate: float, decay_steps: int, step: int,
                          staircase: bool) -> float:
    """tf.train.exponential_decay: base * decay_rate ** (step / decay_steps), floored when staircase."""
    exponent = step // decay_steps if staircase else step / decay_steps
    return base * decay_rate ** exponent


def one_cycle_learning_rate(peak: float, warmup_fraction: float, total_steps: int, step: int) -> float:
    """Linear rise to PEAK over the first WARMUP_FRACTION of the steps, then linear fall toward zero;
    the first step already moves (rate peak / warm-up steps) and the last still does."""
    warmup_steps = max(round(warmup_fraction * total_steps), 1)
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    return peak * (total_steps - step) / max(total_steps - warmup_steps, 1)


def learning_rate_at(recipe: Recipe, step: int) -> float:
    """The recipe's learning rate for STEP (0-based)."""
    if recipe.lr_schedule == "one-cycle":
        return one_cycle_learning_rate(recipe.learning_rate, recipe.lr_warmup_fraction, recipe.total_steps, step)
    return decayed_learning_rate(recipe.learning_rate, recipe.lr_decay_rate, recipe.lr_decay_steps, step,
                                 recipe.lr_staircase)


def ema_decay_at(decay: float, num_updates: int) -> float:
    """tf.train.ExponentialMovingAverage with num_updates: min(decay, (1 + n) / (10 + n))."""
    return min(decay, (1 + num_updates) / (10 + num_updates))


def l2_penalty(weights: list[torch.Tensor], rate: float) -> torch.Tensor:
    """tf.contrib.layers.l2_regularizer(rate) summed over WEIGHTS: rate * sum(w ** 2) / 2."""
    return rate * sum(w.pow(2).sum() for w in weights) / 2


@torch.no_grad()
def add_l2_gradient(weights: list[torch.Tensor], rate: float) -> None:
    """Add the gradient of l2_penalty(WEIGHTS, RATE), rate * w, to each weight's .grad.

    The same update as putting the penalty in the loss, in one fused pass over the weights instead
    of squaring, summing and back-propagating through them (6% of a tutorial-cnn step on this CPU).
    """
    torch._foreach_add_([w.grad for w in weights], weights, alpha=rate)


class WeightAverage:
    """A copy of the network whose parameters are the exponential moving average of the trained ones.

    Like TF's ExponentialMovingAverage, the shadows start equal to the initial weights. Floating
    buffers (BatchNorm's running statistics) are averaged the same way; counters are copied.
    """

    def __init__(self, model: nn.Module):
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        # (shadows, sources) pairs, made once: the trained model's tensors are updated in place.
        self._parameters = (list(self.model.parameters()), [p.detach() for p in model.parameters()])
        self._float_buffers = _buffers(self.model, model, floating=True)
        self._counters = _buffers(self.model, model, floating=False)

    @torch.no_grad()
    def update(self, decay: float) -> None:
        # shadow = decay * shadow + (1 - decay) * weight, for all tensors in one fused call.
        torch._foreach_lerp_(*self._parameters, 1.0 - decay)
        if self._float_buffers[0]:
            torch._foreach_lerp_(*self._float_buffers, 1.0 - decay)
        for shadow, counter in zip(*self._counters):
            shadow.copy_(counter)


def _buffers(shadow: nn.Module, model: nn.Module, floating: bool) -> tuple[list, list]:
    """SHADOW's and MODEL's buffers that are (or are not) floating point, in matching order."""
    def pick(m: nn.Module) -> list[torch.Tensor]:
        return [b for b in m.buffers() if b.is_floating_point() == floating]
    return pick(shadow), pick(model)


def build_optimizer(recipe: Recipe, model: nn.Module) -> torch.optim.Optimizer:
    """The recipe's optimizer; the learning rate is set before every step from the schedule."""
    params = list(model.parameters())
    # On a GPU one fused kernel updates every parameter (fewer launches); on the CPU the default
    # multi-tensor path is as fast and keeps CPU results as they have always been.
    fused = True if params[0].is_cuda else None
    decay = recipe.weight_decay
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.learning_rate, weight_decay=decay, fused=fused)
    if recipe.optimizer in ("momentum", "nesterov"):
        return torch.optim.SGD(params, lr=recipe.learning_rate, momentum=recipe.momentum, weight_decay=decay,
                               nesterov=recipe.optimizer == "nesterov", fused=fused)
    return torch.optim.Adam(params, lr=recipe.learning_rate, eps=recipe.adam_epsilon, weight_decay=decay,
                            fused=fused)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor,
               labels: torch.Tensor, regularized: list[torch.Tensor], recipe: Recipe,
               bf16: bool = False) -> torch.Tensor:
    """One forward/backward/update on float INPUTS; returns [cross-entropy, correct] on the device."""
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(inputs)
    cross_entropy = F.cross_entropy(logits.float(), labels, reduction=recipe.loss_reduction,
                                    label_smoothing=recipe.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    cross_entropy.backward()
    if recipe.l2_rate > 0:
        add_l2_gradient(regularized, recipe.l2_rate)
    optimizer.step()
    correct = (logits.argmax(1) == labels).sum()
    return torch.stack([cross_entropy.detach(), correct.to(cross_entropy.dtype)])


@torch.no_grad()
def gradient_mean_abs(model: nn.Module) -> dict[str, float]:
    """Mean absolute gradient of each layer's parameters (weights and bias together), after backward."""
    sums, counts = {}, {}
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            layer = name.rsplit(".", 1)[0]
            sums[layer] = sums.get(layer, 0) + parameter.grad.abs().sum()
            counts[layer] = counts.get(layer, 0) + parameter.numel()
    if not sums:
        return {}
    # One device-to-host copy for all layers.
    totals = torch.stack(list(sums.values()))
    values = (totals / torch.tensor(list(counts.values()), device=totals.device)).tolist()
    return dict(zip(sums, values))


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read afterwards includes it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _compile_warm_up(step_model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor,
                     bf16: bool, report: Report, step: int) -> float:
    """Compile forward and backward on one batch without training (no update; RNG state and buffers
    such as BatchNorm's running statistics restored), report how long it took and return the seconds.

    On a GPU it runs three times: CUDA-graph trees record on a later call than the first.
    """
    started = time.perf_counter()
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state() if inputs.is_cuda else None
    buffers = [b.clone() for b in step_model.buffers()]
    for _ in range(3 if inputs.is_cuda else 1):
        with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=bf16):
            step_model(inputs).float().sum().backward()
        optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        for live, saved in zip(step_model.buffers(), buffers):
            live.copy_(saved)
    synchronize(inputs.device)
    if inputs.is_cuda:
        torch.cuda.set_rng_state(cuda_rng)
    torch.set_rng_state(cpu_rng)
    seconds = time.perf_counter() - started
    report({"kind": "compile", "step": step, "seconds": seconds})
    return seconds


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split the optimizer state into safetensors-able tensors and JSON-able settings."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], saved: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for name, value in saved["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})


def check_resumable(stored: Recipe, requested: Recipe, model_dir: Path) -> None:
    """Resuming may extend total_steps; any other change needs a new model directory."""
    changed = [f.name for f in dataclasses.fields(Recipe)
               if f.name != "total_steps" and getattr(stored, f.name) != getattr(requested, f.name)]
    if changed:
        raise LenetError(f"{model_dir} was trained with a different recipe (fields {', '.join(changed)} differ); "
                         f"use a new --model-dir or drop those options to resume")


def resolve_recipe(model_dir: str | Path, recipe_name: str | None = None, **overrides) -> Recipe:
    """The recipe for a run in MODEL_DIR: the stored one when resuming, else the named one; then OVERRIDES.

    Resuming may only extend total_steps (checked by train); naming no recipe for a new directory
    takes the default.
    """
    recipe_path = Path(model_dir) / RECIPE_FILE
    if recipe_name is None and recipe_path.exists():
        base = Recipe.from_dict(read_json(recipe_path), str(recipe_path))
    else:
        base = get_recipe(recipe_name or DEFAULT_RECIPE)
    return override(base, **overrides)


def resolve_device(device: str) -> torch.device:
    """'cpu' or 'cuda', refusing CUDA when this machine has none."""
    if device not in ("cpu", "cuda"):
        raise LenetError(f"--device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise LenetError("--device cuda: no CUDA device is available on this machine")
    return torch.device(device)


# cuBLAS gives reproducible matrix products only with a fixed workspace; with deterministic
# algorithms on, PyTorch refuses CUDA matmuls unless this is set before cuBLAS's first use.
CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"


def enter_deterministic_mode(device: torch.device, compiled: bool) -> Callable[[], None]:
    """Turn on the process-wide switches for bitwise-reproducible training on DEVICE; returns the
    function that puts them back as they were (the cuBLAS setting stays: cuBLAS reads it once)."""
    deterministic, benchmark = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC_WORKSPACE)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    if compiled:  # compiled dropout otherwise draws its masks from its own generator
        from torch._inductor import config as inductor_config  # imported here: it takes seconds
        fallback_random, inductor_config.fallback_random = inductor_config.fallback_random, True

    def restore() -> None:
        torch.use_deterministic_algorithms(deterministic)
        torch.backends.cudnn.benchmark = benchmark
        if compiled:
            inductor_config.fallback_random = fallback_random
    return restore


def train(recipe: Recipe, model_dir: str | Path, data: Mnist, device: str = "cpu",
          report: Report | None = None, stop_requested: Callable[[], bool] | None = None,
          tensorboard: bool = True, histogram_every_steps: int = 1000,
          execution: Execution = Execution()) -> dict:
    """Train RECIPE into MODEL_DIR (resuming from its newest checkpoint) and return the final metrics.

    REPORT receives dicts with a "kind" of log, validation, checkpoint or test. When
    STOP_REQUESTED returns true the loop saves a checkpoint after the current step and returns.
    TENSORBOARD writes event files under MODEL_DIR/events/train, with weight and gradient
    histograms every HISTOGRAM_EVERY_STEPS steps. EXECUTION says how to compute (see Execution).
    One run at a time trains in a model directory: while this one runs, another is refused.
    """
    with claim_model_dir(model_dir):
        return _train_claimed(recipe, Path(model_dir), data, device, report or (lambda event: None), stop_requested,
                              tensorboard, histogram_every_steps, execution)


def _train_claimed(recipe: Recipe, model_dir: Path, data: Mnist, device: str, report: Report,
                   stop_requested: Callable[[], bool] | None, tensorboard: bool, histogram_every_steps: int,
                   execution: Execution) -> dict:
    """train()'s work, once the model directory is claimed."""
    recipe_path = model_dir / RECIPE_FILE
    if recipe_path.exists():
        check_resumable(Recipe.from_dict(read_json(recipe_path), str(recipe_path)), recipe, model_dir)
    write_json(recipe_path, recipe.to_dict())
    device = resolve_device(device)

    torch.manual_seed(recipe.seed)
    layout = torch.channels_last if execution.channels_last else torch.contiguous_format
    model = build_model(recipe.model).to(device, memory_format=layout)
    optimizer = build_optimizer(recipe, model)
    average = WeightAverage(model) if recipe.ema_decay > 0 else None
    eval_model = average.model if average else model
    start_step, metrics = 0, {}
    if list_checkpoints(model_dir):
        metadata, eval_weights, state = read_checkpoint(model_dir)
        load_weights(eval_model, eval_weights, str(model_dir))
        if average:
            load_weights(model, {k[len("raw."):]: v for k, v in state.items() if k.startswith("raw.")},
                         str(model_dir))
        _restore_optimizer(optimizer, state, metadata["optimizer"])
        torch.set_rng_state(state["rng.cpu"])
        if device.type == "cuda" and "rng.cuda" in state:
            torch.cuda.set_rng_state(state["rng.cuda"])
        start_step, metrics = metadata["step"], metadata["metrics"]

    data = (data.without_validation() if recipe.train_on_validation else data).to(device)
    # The compiled network shares its parameters with MODEL; checkpoints and evaluation use MODEL.
    # On a GPU, "reduce-overhead" replays the step as a CUDA graph: one launch instead of dozens.
    step_model = (torch.compile(model, mode="reduce-overhead" if device.type == "cuda" else None)
                  if execution.compile else model)
    batches = BatchOrder(len(data.train_labels), recipe.batch_size, recipe.seed, device)
    regularized = l2_weights(model)
    # Per-step [cross-entropy, correct] stay on the device until the next log line reads them.
    step_stats = torch.zeros(recipe.log_every_steps, 2, device=device)
    pending_from = start_step
    clock = time.perf_counter()

    def drain(step: int) -> dict:
        """Read the stats of steps [pending_from, step) from the device (the sync point), check them."""
        nonlocal pending_from, clock
        rows = step_stats[:step - pending_from].cpu()
        # The L2 penalty is not in the step's graph (add_l2_gradient adds its gradient): it is
        # computed here, of the weights after the logged step's update.
        l2_loss = l2_penalty(regularized, recipe.l2_rate).item() if recipe.l2_rate > 0 else 0.0
        bad_rows = (~torch.isfinite(rows[:, 0])).nonzero().flatten().tolist()
        if not math.isfinite(l2_loss):
            bad_rows.append(len(rows) - 1)  # the weights of the last step
        if bad_rows:
            bad_row = bad_rows[0]
            saved = list_checkpoints(model_dir)
            raise TrainingDiverged(
                f"loss became {rows[bad_row, 0].item() + l2_loss} at step {pending_from + bad_row + 1} "
                f"(learning rate {lr:g}); stopped, newest checkpoint kept: "
                f"{'step ' + str(saved[-1]) if saved else 'none'}. Lower --learning-rate (seed 001's literal "
                f"gradient descent at 0.5 on a summed loss diverges this way)")
        now = time.perf_counter()
        images_per_s = (step - pending_from) * recipe.batch_size / max(now - clock, 1e-9)
        pending_from, clock = step, now
        cross_entropy, correct = rows[-1].tolist()
        return {"kind": "log", "step": step, "total_loss": cross_entropy + l2_loss, "cross_entropy": cross_entropy,
                "l2_loss": l2_loss, "batch_accuracy": correct / recipe.batch_size,
                "learning_rate": lr, "images_per_s": images_per_s, "gradient_mean_abs": gradient_mean_abs(model)}

    def validate(step: int) -> float:
        logits = batched_logits(eval_model, data.val_images)
        accuracy = metrics_from_logits(logits, data.val_labels)["accuracy"]
        if events:
            predictions = logits.argmax(1)
            wrong = (predictions != data.val_labels).nonzero().flatten()[:MISCLASSIFIED_SHOWN]
            events.validation(step, accuracy, data.val_images[wrong], data.val_labels[wrong], predictions[wrong])
        return accuracy

    def checkpoint(step: int) -> None:
        state = {"rng.cpu": torch.get_rng_state()}
        if device.type == "cuda":
            state["rng.cuda"] = torch.cuda.get_rng_state()
        if average:
            state.update({f"raw.{k}": v for k, v in model.state_dict().items()})
        optimizer_tensors, optimizer_settings = _optimizer_tensors(optimizer)
        state.update(optimizer_tensors)
        path = save_checkpoint(model_dir, step, eval_model.state_dict(), state, {
            "recipe": recipe.to_dict(), "metrics": metrics, "dataset_sha256": data.sha256,
            "optimizer": optimizer_settings, "evaluation_weights": "moving_average" if average else "trained",
        }, recipe.keep_checkpoints)
        report({"kind": "checkpoint", "step": step, "path": str(path)})

    events = TrainingEvents(model_dir, start_step) if tensorboard else None
    lr = recipe.learning_rate
    done = start_step
    model.train()
    compile_seconds = aside_seconds = 0.0
    # Process-wide switches, put back when training returns or fails.
    leave_deterministic_mode = enter_deterministic_mode(device, execution.compile) if execution.deterministic \
        else None
    try:
        if events and start_step == 0:
            events.graph(model, data.train_images[:1])
        if execution.compile:
            compile_seconds = _compile_warm_up(step_model, optimizer,
                                               to_float(data.train_images[:recipe.batch_size])
                                               .contiguous(memory_format=layout), execution.precision == "bf16",
                                               report, start_step)
        # Training time excludes compilation and everything that is not a step: validation, the test,
        # checkpoints and histograms (timed apart, after waiting for the device, as aside_seconds).
        clock = loop_started = time.perf_counter()
        for step in range(start_step, recipe.total_steps):
            lr = learning_rate_at(recipe, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            indices = batches.indices(step)
            inputs = distort(to_float(data.train_images[indices]), recipe.augment).contiguous(memory_format=layout)
            step_stats[step - pending_from] = train_step(step_model, optimizer, inputs, data.train_labels[indices],
                                                         regularized, recipe, execution.precision == "bf16")
            if average:
                # Averaged after the update; num_updates is the global step before this update.
                average.update(ema_decay_at(recipe.ema_decay, step))

            done = step + 1
            last = done == recipe.total_steps
            stopping = stop_requested is not None and stop_requested()
            checkpointing = done % recipe.checkpoint_every_steps == 0 or last or stopping
            # Checkpoint steps are checked too, so a checkpoint never holds non-finite weights.
            if done == 1 or done % recipe.log_every_steps == 0 or checkpointing:
                log = drain(done)
                metrics["train_loss"] = log["total_loss"]
                report(log)
                if events:
                    events.log(log)
            histogram = events and histogram_every_steps > 0 and done % histogram_every_steps == 0
            validating = (done % recipe.eval_every_steps == 0 or last) and len(data.val_labels) > 0
            if not (histogram or validating or checkpointing):
                continue
            synchronize(device)
            aside_from = time.perf_counter()
            if histogram:
                events.histograms(done, model)
            if validating:
                metrics["validation_accuracy"] = validate(done)
                report({"kind": "validation", "step": done, "accuracy": metrics["validation_accuracy"]})
            if last:
                metrics["test_accuracy"] = evaluate(eval_model, data.test_images, data.test_labels)["accuracy"]
                report({"kind": "test", "step": done, "accuracy": metrics["test_accuracy"]})
            if checkpointing:
                checkpoint(done)
            aside = time.perf_counter() - aside_from
            aside_seconds += aside
            clock += aside  # the next log line's images/s counts training only
            if stopping:
                break
    finally:
        if events:
            events.close()
        if leave_deterministic_mode:
            leave_deterministic_mode()
    train_seconds = time.perf_counter() - loop_started - aside_seconds
    return {"step": done, **metrics, "train_seconds": train_seconds, "compile_seconds": compile_seconds}
