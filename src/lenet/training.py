"""The training loop, with the TensorFlow formulas it reproduces: decayed learning rate, L2, EMA."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .augment import distort
from .calibration import fit_temperature
from .checkpoint import (RECIPE_FILE, check_resumable, claim_model_dir, list_checkpoints, load_weights, rank_seed,
                         read_checkpoint, restore_resume_state, resume_state, rng_states, save_checkpoint)
from .data import BatchOrder, Dataset, to_float
from .decline import FALLBACK_MIN_CONFIDENCE, default_min_confidence
from .distributed import DEFAULT_TIMEOUT_S, Distributed, Group, process_group
from .errors import LenetError
from .evaluation import evaluate, metrics_from_logits
from .execution import Execution, deterministic_mode, resolve_device, resolve_precision, synchronize
from .files import write_json
from .inference import batched_logits
from .models import build_model, l2_weights
from .recipes import Recipe
from .results import CheckpointSaved, Compiled, StepLogged, TrainingEvent, TrainingStarted, Tested, Validated
from .tensorboard import MISCLASSIFIED_SHOWN, TrainingEvents

Report = Callable[[TrainingEvent], None]


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
    return torch.optim.Adam(params, lr=recipe.learning_rate, betas=(recipe.adam_beta1, recipe.adam_beta2),
                            eps=recipe.adam_epsilon, weight_decay=decay, fused=fused)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor,
               labels: torch.Tensor, regularized: list[torch.Tensor], recipe: Recipe,
               bf16: bool = False, loss_scale: float = 1.0) -> torch.Tensor:
    """One forward/backward/update on float INPUTS; returns [cross-entropy, correct] on the device.

    LOSS_SCALE multiplies the loss before backward: a summed loss split over N ranks, whose
    gradients DistributedDataParallel averages, needs N to be the sum over the whole batch."""
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(inputs)
    cross_entropy = F.cross_entropy(logits.float(), labels, reduction=recipe.loss_reduction,
                                    label_smoothing=recipe.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    (cross_entropy * loss_scale if loss_scale != 1.0 else cross_entropy).backward()
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


def _compile_warm_up(step_model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor,
                     bf16: bool) -> float:
    """Compile forward and backward on one batch without training (no update; RNG state and buffers
    such as BatchNorm's running statistics restored); returns the seconds it took.

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
    return time.perf_counter() - started


class StepStats:
    """Per-step [cross-entropy, correct] kept on the device until a log line reads them, and the
    clock of training time (steps only: what runs aside, such as validation, is not counted)."""

    def __init__(self, log_every_steps: int, start_step: int, device: torch.device):
        self.rows = torch.zeros(log_every_steps, 2, device=device)
        self.device, self.pending_from = device, start_step
        self.started = self.clock = time.perf_counter()
        self.aside_seconds = 0.0

    def record(self, step: int, row: torch.Tensor) -> None:
        self.rows[step - self.pending_from] = row

    def drain(self, step: int, recipe: Recipe, learning_rate: float, regularized: list[torch.Tensor],
              model_dir: Path, group: Group) -> StepLogged:
        """The log event of steps [pending_from, STEP) over the whole global batch, read from the
        device (the sync point; every rank calls it at the same steps); a non-finite loss raises
        TrainingDiverged."""
        rows = group.sum(self.rows[:step - self.pending_from].clone()).cpu()
        if recipe.loss_reduction == "mean":  # the mean of the ranks' means: the global batch's mean
            rows[:, 0] /= group.world_size
        # The L2 penalty is not in the step's graph (add_l2_gradient adds its gradient): it is
        # computed here, of the weights after the logged step's update.
        l2_loss = l2_penalty(regularized, recipe.l2_rate).item() if recipe.l2_rate > 0 else 0.0
        bad_rows = (~torch.isfinite(rows[:, 0])).nonzero().flatten().tolist()
        if not math.isfinite(l2_loss):
            bad_rows.append(len(rows) - 1)  # the weights of the last step
        if bad_rows:
            saved = list_checkpoints(model_dir)
            raise TrainingDiverged(
                f"loss became {rows[bad_rows[0], 0].item() + l2_loss} at step {self.pending_from + bad_rows[0] + 1} "
                f"(learning rate {learning_rate:g}); stopped, newest checkpoint kept: "
                f"{'step ' + str(saved[-1]) if saved else 'none'}. Lower --learning-rate (seed 001's literal "
                f"gradient descent at 0.5 on a summed loss diverges this way)")
        now = time.perf_counter()
        images_per_s = (step - self.pending_from) * recipe.batch_size / max(now - self.clock, 1e-9)
        self.pending_from, self.clock = step, now
        cross_entropy, correct = rows[-1].tolist()
        return StepLogged(step, cross_entropy + l2_loss, cross_entropy, l2_loss, correct / recipe.batch_size,
                          learning_rate, images_per_s)

    @contextlib.contextmanager
    def aside(self) -> Iterator[None]:
        """Time the block apart from training, after waiting for the device's queued steps."""
        synchronize(self.device)
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        self.aside_seconds += seconds
        self.clock += seconds  # the next log line's images/s counts training only

    def train_seconds(self) -> float:
        return time.perf_counter() - self.started - self.aside_seconds


def _validate(eval_model: nn.Module, data: Dataset, step: int, events: TrainingEvents | None) -> tuple[float, torch.Tensor]:
    """Validation accuracy at STEP, and the validation logits; the misclassified images go to the events."""
    logits = batched_logits(eval_model, data.val_images).float()
    accuracy = metrics_from_logits(logits, data.val_labels).accuracy
    if events:
        predictions = logits.argmax(1)
        wrong = (predictions != data.val_labels).nonzero().flatten()[:MISCLASSIFIED_SHOWN]
        events.validation(step, accuracy, data.val_images[wrong], data.val_labels[wrong], predictions[wrong],
                          data.classes)
    return accuracy, logits


def _calibration(eval_model: nn.Module, data: Dataset, validation_logits: torch.Tensor | None) -> tuple[float, float]:
    """The calibration temperature of the weights being checkpointed and their default threshold for
    answering (see lenet.decline), both chosen on the validation split (its logits computed here unless
    VALIDATION_LOGITS already hold them). Without a validation split: no calibration, the fallback threshold."""
    if len(data.val_labels) == 0:
        return 1.0, FALLBACK_MIN_CONFIDENCE
    if validation_logits is None:
        validation_logits = batched_logits(eval_model, data.val_images).float()
    temperature = fit_temperature(validation_logits, data.val_labels)
    confidence = torch.softmax(validation_logits / temperature, dim=1).max(1).values.cpu().numpy()
    return temperature, default_min_confidence(confidence)


def _save(model_dir: Path, step: int, recipe: Recipe, model: nn.Module, average: WeightAverage | None,
          optimizer: torch.optim.Optimizer, metrics: dict, data: Dataset, rank_rng_states: list[dict],
          calibration: tuple[float, float]) -> CheckpointSaved:
    """Checkpoint STEP, with its CALIBRATION (temperature, default threshold); returns the checkpoint event."""
    state, optimizer_settings = resume_state(model, optimizer, average is not None, rank_rng_states)
    path = save_checkpoint(model_dir, step, (average.model if average else model).state_dict(), state,
                           recipe=recipe, metrics=metrics, dataset_sha256=data.sha256, classes=data.classes,
                           optimizer=optimizer_settings,
                           evaluation_weights="moving_average" if average else "trained",
                           keep=recipe.keep_checkpoints, temperature=calibration[0],
                           min_confidence=calibration[1])
    return CheckpointSaved(step, str(path))


def _resume(model_dir: Path, recipe: Recipe, data: Dataset, model: nn.Module, average: WeightAverage | None,
            optimizer: torch.optim.Optimizer, rank: int) -> tuple[int, dict]:
    """Restore the newest checkpoint of MODEL_DIR, if any, into the run; returns (its step, its metrics)."""
    if not list_checkpoints(model_dir):
        return 0, {}
    checkpoint, eval_weights, state = read_checkpoint(model_dir)
    changed = [f.name for f in dataclasses.fields(Recipe) if f.name != "total_steps"
               and getattr(checkpoint.recipe, f.name) != getattr(recipe, f.name)]
    if changed:  # recipe.json edited by hand since the checkpoint was written
        raise LenetError(f"{model_dir}: {RECIPE_FILE} and checkpoint {checkpoint.step} disagree on "
                         f"{', '.join(changed)}; restore {RECIPE_FILE} or train into a new --model-dir")
    if checkpoint.dataset_sha256 and checkpoint.dataset_sha256 != data.sha256:  # another --data-dir's files
        raise LenetError(f"{model_dir}: checkpoint {checkpoint.step} was trained on other {recipe.dataset} files "
                         f"(their SHA-256 checksums differ); resume with the same --data-dir")
    load_weights(average.model if average else model, eval_weights, str(model_dir))
    restore_resume_state(checkpoint, state, model, optimizer, average is not None, rank)
    return checkpoint.step, dict(checkpoint.metrics)


def _gather_rng_states(group: Group, device: torch.device) -> list[dict[str, torch.Tensor]]:
    """Every rank's generator states, in rank order (a collective: every rank calls it)."""
    mine = rng_states(device)
    gathered = {key: group.gather_rng_states(state) for key, state in mine.items()}
    return [{key: gathered[key][rank] for key in mine} for rank in range(group.world_size)]


def train(recipe: Recipe, model_dir: str | Path, data: Dataset, device: str | torch.device = "cpu",
          report: Report | None = None, stop_requested: Callable[[], bool] | None = None,
          tensorboard: bool = True, histogram_every_steps: int = 1000,
          execution: Execution = Execution(), distributed: Distributed | None = None,
          dist_timeout_s: float = DEFAULT_TIMEOUT_S) -> dict:
    """Train RECIPE into MODEL_DIR (resuming from its newest checkpoint) and return the final metrics.

    REPORT receives the training events of lenet.results as they happen: TrainingStarted, Compiled,
    StepLogged, Validated, CheckpointSaved and Tested. When STOP_REQUESTED returns true the loop saves a checkpoint after the
    current step and returns. TENSORBOARD writes event files under MODEL_DIR/events/train, with
    weight and gradient histograms every HISTOGRAM_EVERY_STEPS steps. EXECUTION says how to compute.
    One run at a time trains in a model directory: while this one runs, another is refused.

    DISTRIBUTED (distributed.from_environment() under torchrun) trains data-parallel: each rank takes
    its slice of every global batch of recipe.batch_size; rank 0 alone holds and writes MODEL_DIR
    and reports, and collectives give up after DIST_TIMEOUT_S. MODEL_DIR must be one directory that
    every rank reads (the same machine, or a shared filesystem).
    """
    model_dir, report = Path(model_dir), report or (lambda event: None)
    device = resolve_device(device)
    execution, precision = resolve_precision(execution, device)
    if isinstance(histogram_every_steps, bool) or not isinstance(histogram_every_steps, int) \
            or histogram_every_steps < 0:
        raise LenetError(f"--histogram-every must be a whole number >= 0, got {histogram_every_steps}")
    if distributed:
        if recipe.batch_size % distributed.world_size:
            raise LenetError(f"recipe field batch_size: {recipe.batch_size} images do not split evenly over "
                             f"{distributed.world_size} ranks (the batch size is the global batch)")
        if device.type == "cuda":
            device = torch.device("cuda", distributed.local_rank)
            torch.cuda.set_device(device)
    if recipe.dataset != data.name:
        raise LenetError(f"recipe field dataset is {recipe.dataset}, the data given is {data.name}")
    check_resumable(model_dir, recipe)  # before the directory is made or locked: a refused run writes nothing
    with (process_group(distributed, device, dist_timeout_s) if distributed
          else contextlib.nullcontext(Group(None))) as group, \
            (claim_model_dir(model_dir) if group.is_main else contextlib.nullcontext()), \
            (deterministic_mode(device, execution.compile) if execution.deterministic else contextlib.nullcontext()):
        if not group.is_main:
            report, tensorboard = (lambda event: None), False  # rank 0 speaks and writes for the run
        try:
            return _train_claimed(recipe, model_dir, data, device, report, stop_requested, tensorboard,
                                  histogram_every_steps, execution, group, precision)
        except RuntimeError as error:  # gloo and NCCL report a lost or stuck peer this way
            if not distributed:
                raise
            cause = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
            saved = list_checkpoints(model_dir)
            raise LenetError(f"lost contact with another rank, which stopped or failed ({cause}); newest "
                             f"checkpoint kept: {'step ' + str(saved[-1]) if saved else 'none'}") from None


def _train_claimed(recipe: Recipe, model_dir: Path, data: Dataset, device: torch.device, report: Report,
                   stop_requested: Callable[[], bool] | None, tensorboard: bool, histogram_every_steps: int,
                   execution: Execution, group: Group, precision: str) -> dict:
    """train()'s work, once the model directory is claimed."""
    check_resumable(model_dir, recipe)
    torch.manual_seed(recipe.seed)  # the same initial weights on every rank
    layout = execution.memory_format
    model = build_model(recipe.model, num_classes=len(data.classes))
    if group.world_size > 1 and device.type == "cuda":  # batch statistics over the global batch
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device, memory_format=layout)
    optimizer = build_optimizer(recipe, model)
    average = WeightAverage(model) if recipe.ema_decay > 0 else None
    eval_model = average.model if average else model
    if group.rank > 0:  # other dropout masks and distortions than rank 0's
        torch.manual_seed(rank_seed(recipe.seed, group.rank))
    start_step, metrics = _resume(model_dir, recipe, data, model, average, optimizer, group.rank)
    if group.is_main:
        write_json(model_dir / RECIPE_FILE, recipe.to_dict())  # only once the checks above have passed
    data = (data.without_validation() if recipe.train_on_validation else data).to(device)
    report(TrainingStarted(start_step, len(data.train_labels), str(device), precision, group.world_size))
    # The compiled network shares its parameters with MODEL; checkpoints and evaluation use MODEL.
    # On a GPU, "reduce-overhead" replays the step as a CUDA graph: one launch instead of dozens.
    step_model = group.wrap(model)
    if execution.compile:
        step_model = torch.compile(step_model, mode="reduce-overhead" if device.type == "cuda" else None)
    batches = BatchOrder(len(data.train_labels), recipe.batch_size, recipe.seed, device)
    regularized = l2_weights(model)
    loss_scale = float(group.world_size) if recipe.loss_reduction == "sum" else 1.0
    events = TrainingEvents(model_dir, start_step) if tensorboard else None
    compile_seconds = 0.0
    with contextlib.closing(events) if events else contextlib.nullcontext():
        if events and start_step == 0:
            events.graph(model, data.train_images[:1])
        if execution.compile:
            compile_seconds = _compile_warm_up(step_model, optimizer, to_float(data.train_images[:recipe.batch_size])
                                               .contiguous(memory_format=layout), execution.bf16)
            report(Compiled(start_step, compile_seconds))
        model.train()
        stats = StepStats(recipe.log_every_steps, start_step, device)  # the training clock starts here
        done = start_step
        for step in range(start_step, recipe.total_steps):
            lr = learning_rate_at(recipe, step)
            for group_settings in optimizer.param_groups:
                group_settings["lr"] = lr
            indices = group.shard(batches.indices(step))
            inputs = distort(to_float(data.train_images[indices]), recipe.augment).contiguous(memory_format=layout)
            stats.record(step, train_step(step_model, optimizer, inputs, data.train_labels[indices], regularized,
                                          recipe, execution.bf16, loss_scale))
            if average:  # averaged after the update; num_updates is the global step before it
                average.update(ema_decay_at(recipe.ema_decay, step))

            done = step + 1
            last = done == recipe.total_steps
            stopping = group.any(stop_requested is not None and stop_requested())  # all ranks stop together
            checkpointing = done % recipe.checkpoint_every_steps == 0 or last or stopping
            # Checkpoint steps are checked too, so a checkpoint never holds non-finite weights.
            if done == 1 or done % recipe.log_every_steps == 0 or checkpointing:
                log = stats.drain(done, recipe, lr, regularized, model_dir, group)
                metrics["train_loss"] = log.total_loss
                if group.is_main:
                    report(log)
                    if events:
                        events.log(log, gradient_mean_abs(model))
            rank_rng_states = _gather_rng_states(group, device) if checkpointing else None
            histogram = events and histogram_every_steps > 0 and done % histogram_every_steps == 0
            validating = (done % recipe.eval_every_steps == 0 or last) and len(data.val_labels) > 0
            if group.is_main and (histogram or validating or checkpointing):
                with stats.aside():  # validation, the test, checkpoints and histograms are not training time
                    if histogram:
                        events.histograms(done, model)
                    validation_logits = None
                    if validating:
                        metrics["validation_accuracy"], validation_logits = _validate(eval_model, data, done, events)
                        report(Validated(done, metrics["validation_accuracy"]))
                    if last:
                        metrics["test_accuracy"] = evaluate(eval_model, data.test_images, data.test_labels).accuracy
                        report(Tested(done, metrics["test_accuracy"]))
                    if checkpointing:
                        report(_save(model_dir, done, recipe, model, average, optimizer, metrics, data,
                                     rank_rng_states, _calibration(eval_model, data, validation_logits)))
            if stopping:
                break
    return {"step": done, **metrics, "train_seconds": stats.train_seconds(), "compile_seconds": compile_seconds}
