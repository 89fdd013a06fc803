"""Checkpoints in a model directory: safetensors weights + JSON sidecar, atomic writes, retention, resume.

For step N a checkpoint is three files, written in this order, each atomically:
  model-N.safetensors   the evaluation weights (averaged ones when the recipe averages)
  state-N.safetensors   what resuming needs besides: raw weights, optimizer tensors, RNG state
  model-N.json          recipe, step, metrics, class names, dataset and weight checksums, optimizer
                        settings, the calibration temperature and the default threshold for answering
The JSON is written last, so a checkpoint exists exactly when its JSON does. Nothing is pickled.
A training run holds train.lock in the directory, so that two runs never write into one; the
directory's recipe.json says what it trains, and a resumed run may only extend its steps. Others read
beside it with load_intact_model, which copes with a checkpoint pruned while they read it and passes
over a damaged one; resuming never passes one over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from .calibration import MAX_TEMPERATURE, MIN_TEMPERATURE
from .decline import FALLBACK_MIN_CONFIDENCE, check_min_confidence
from .errors import LenetError
from .files import (LOCK_FILE, RECIPE_FILE, SIDECAR_FILE, atomic_write_bytes, check_finite_weights, read_file_bytes,
                    read_json, write_json)
from .datasets import control_character, default_classes
from .models import build_model, model_device
from .recipes import DEFAULT_RECIPE, Recipe, get_recipe, override

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not guarded against a second writer
    fcntl = None

FORMAT = "lenet-checkpoint-1"
EVALUATION_WEIGHTS = ("trained", "moving_average")
# The state file's keys: RNG states (rank 0's plain, other ranks' of a distributed run suffixed
# ".rank-R"), the raw (not averaged) weights, the optimizer's tensors.
_RNG_CPU, _RNG_CUDA, _RAW, _OPTIMIZER = "rng.cpu", "rng.cuda", "raw.", "optimizer."


def _rank_key(key: str, rank: int) -> str:
    return key if rank == 0 else f"{key}.rank-{rank}"


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint's JSON sidecar says, checked and typed where it is read."""
    model_dir: Path
    step: int
    recipe: Recipe
    metrics: dict[str, float]         # train_loss, validation_accuracy, test_accuracy when measured
    weights_sha256: str               # of model-N.safetensors
    dataset_sha256: dict[str, str]    # of the files trained on
    evaluation_weights: str           # which weights model-N holds: "moving_average" or "trained"
    classes: tuple[str, ...]          # the names of the network's outputs, in order (recipe.dataset's)
    optimizer: dict                   # the optimizer's JSON settings (param_groups, scalars), for resume
    # softmax(logits / temperature) are its calibrated probabilities (see calibration); 1.0 when it
    # was written without one (before lenet calibrated, or trained without a validation split).
    temperature: float = 1.0
    # Its default threshold for answering (see decline), chosen on the validation split; the fallback
    # when it was written without one.
    min_confidence: float = FALLBACK_MIN_CONFIDENCE

    @property
    def test_accuracy(self) -> float | None:
        return self.metrics.get("test_accuracy")


def _paths(model_dir: Path, step: int) -> tuple[Path, Path, Path]:
    stem = f"{step:08d}"
    return (model_dir / f"model-{stem}.safetensors", model_dir / f"state-{stem}.safetensors",
            model_dir / f"model-{stem}.json")


def _to_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    return save_safetensors({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()})


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    return _tensors_from_bytes(read_file_bytes(path), path)


def _tensors_from_bytes(payload: bytes, path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_safetensors(payload)
    except (SafetensorError, ValueError) as error:
        raise LenetError(f"{path}: not a valid safetensors file ({error})") from None


@contextlib.contextmanager
def claim_model_dir(model_dir: str | Path) -> Iterator[None]:
    """Create MODEL_DIR if needed and hold it for one training run; a second claim is refused.

    The claim is an advisory lock (flock) on MODEL_DIR/train.lock, which also names the holding
    process. The system drops the lock when its process ends, however it ends: a killed run leaves
    no stale claim behind.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    with open(model_dir / LOCK_FILE, "a+") as lock:
        if fcntl:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                holder = lock.read().strip()
                raise LenetError(f"{model_dir}: another training run is writing into this directory"
                                 f"{f' (process {holder})' if holder.isdigit() else ''}; "
                                 f"wait for it to end or use another --model-dir") from None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        _remove_stale_temporaries(model_dir)
        try:
            yield
        finally:
            lock.truncate(0)


# atomic_write_bytes's temporaries of the files a run writes: ".model-00000050.json.k2j3.tmp" and the like.
_TEMPORARY = re.compile(r"^\.(?:(?:model|state)-\d+\.(?:json|safetensors)|recipe\.json)\..*\.tmp$")


def _remove_stale_temporaries(model_dir: Path) -> None:
    """Delete the half-written files a killed run left (only ever called with the directory claimed)."""
    for path in model_dir.iterdir():
        if _TEMPORARY.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)


def require_model_dir(path: str | Path) -> Path:
    """PATH, refused unless it is a directory, saying whether it is a file or missing."""
    path = Path(path)
    if path.is_file():
        # A torch.export or TorchScript file given where a model goes: say what lenet runs instead.
        hint = " (of exported models lenet runs .onnx files only)" if path.suffix.lower() in (".pt2", ".pt", ".pth") \
            else ""
        raise LenetError(f"{path}: a file, not a model directory{hint}")
    if not path.is_dir():
        raise LenetError(f"{path}: no such model directory")
    return path


def list_checkpoints(model_dir: str | Path) -> list[int]:
    """Steps of the complete checkpoints in MODEL_DIR, oldest first."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(m.group(1)) for p in model_dir.iterdir() if (m := SIDECAR_FILE.match(p.name)))


def stored_recipe(model_dir: str | Path) -> Recipe | None:
    """The recipe in MODEL_DIR/recipe.json, or None for a directory that has none (a new run)."""
    path = Path(model_dir) / RECIPE_FILE
    return Recipe.from_dict(read_json(path), str(path)) if path.exists() else None


def resolve_recipe(model_dir: str | Path, recipe_name: str | None = None, **overrides) -> Recipe:
    """The recipe for a run in MODEL_DIR: the stored one when resuming, else the named one; then OVERRIDES.

    Resuming may only extend total_steps (check_resumable); naming no recipe for a new directory
    takes the default.
    """
    stored = stored_recipe(model_dir) if recipe_name is None else None
    return override(stored or get_recipe(recipe_name or DEFAULT_RECIPE), **overrides)


def check_resumable(model_dir: str | Path, requested: Recipe) -> None:
    """Refuse REQUESTED for MODEL_DIR unless the directory is new or was trained with the same recipe
    (resuming may extend total_steps; any other change needs a new model directory)."""
    stored = stored_recipe(model_dir)
    if stored is None:
        if list_checkpoints(model_dir):
            raise LenetError(f"{model_dir}: has checkpoints but no {RECIPE_FILE}; restore it, or train "
                             f"into a new --model-dir")
        return
    changed = [f.name for f in dataclasses.fields(Recipe)
               if f.name != "total_steps" and getattr(stored, f.name) != getattr(requested, f.name)]
    if changed:
        raise LenetError(f"{model_dir} was trained with a different recipe (fields {', '.join(changed)} differ); "
                         f"use a new --model-dir or drop those options to resume")


def save_checkpoint(model_dir: str | Path, step: int, eval_weights: dict[str, torch.Tensor],
                    state_tensors: dict[str, torch.Tensor], *, recipe: Recipe, metrics: dict[str, float],
                    dataset_sha256: dict[str, str], classes: tuple[str, ...], optimizer: dict,
                    evaluation_weights: str, keep: int, temperature: float = 1.0,
                    min_confidence: float = FALLBACK_MIN_CONFIDENCE) -> Path:
    """Write checkpoint STEP and delete all but the KEEP newest; returns the sidecar path."""
    model_dir = Path(model_dir)
    weights_path, state_path, sidecar_path = _paths(model_dir, step)
    weights_bytes = _to_bytes(eval_weights)
    atomic_write_bytes(weights_path, weights_bytes)
    atomic_write_bytes(state_path, _to_bytes(state_tensors))
    write_json(sidecar_path, {"format": FORMAT, "step": step, "recipe": recipe.to_dict(), "metrics": metrics,
                              "dataset_sha256": dataset_sha256, "classes": list(classes), "optimizer": optimizer,
                              "evaluation_weights": evaluation_weights, "temperature": temperature,
                              "min_confidence": min_confidence,
                              "weights_file": weights_path.name, "state_file": state_path.name,
                              "weights_sha256": hashlib.sha256(weights_bytes).hexdigest()})
    for old_step in list_checkpoints(model_dir)[:-keep]:
        for path in reversed(_paths(model_dir, old_step)):  # sidecar first: never a dangling checkpoint
            path.unlink(missing_ok=True)
    return sidecar_path


def _field(payload: dict, name: str, kind: type, origin: Path, default=None):
    """PAYLOAD[NAME] if it is a KIND (DEFAULT when missing and a default is given), else a LenetError."""
    if name not in payload and default is not None:
        return default
    value = payload.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise LenetError(f"{origin}: field {name} is missing or not {kind.__name__} (got {value!r:.60})")
    return value


def _checkpoint_from_json(payload: dict, model_dir: Path, step: int, origin: Path) -> Checkpoint:
    if payload.get("format") != FORMAT:
        raise LenetError(f"{origin}: unknown checkpoint format {payload.get('format')!r:.60}")
    if _field(payload, "step", int, origin) != step:
        raise LenetError(f"{origin}: says step {payload['step']!r:.30}, its file name step {step}")
    metrics = _field(payload, "metrics", dict, origin)
    # A metric that is not a finite number (hand-edited, or from another tool) is not reported.
    metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
               and math.isfinite(v)}
    evaluation_weights = _field(payload, "evaluation_weights", str, origin, default="trained")
    if evaluation_weights not in EVALUATION_WEIGHTS:
        raise LenetError(f"{origin}: field evaluation_weights must be one of {', '.join(EVALUATION_WEIGHTS)}")
    recipe = Recipe.from_dict(payload.get("recipe"), f"{origin} (field recipe)")
    return Checkpoint(model_dir=model_dir, step=step, recipe=recipe, classes=_classes(payload, recipe, origin),
                      metrics=metrics, weights_sha256=_field(payload, "weights_sha256", str, origin),
                      dataset_sha256=_field(payload, "dataset_sha256", dict, origin, default={}),
                      evaluation_weights=evaluation_weights, optimizer=_field(payload, "optimizer", dict, origin),
                      temperature=_temperature(payload, origin), min_confidence=_min_confidence(payload, origin))


def _min_confidence(payload: dict, origin: Path) -> float:
    """The sidecar's default threshold (the fallback when it has none), refused outside [0, 1]."""
    return check_min_confidence(payload.get("min_confidence", FALLBACK_MIN_CONFIDENCE), f"{origin}: field min_confidence")


def _temperature(payload: dict, origin: Path) -> float:
    """The sidecar's calibration temperature (1.0 when it has none), refused outside calibration's bounds."""
    value = payload.get("temperature", 1.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not MIN_TEMPERATURE <= value <= MAX_TEMPERATURE:
        raise LenetError(f"{origin}: field temperature must be a number from {MIN_TEMPERATURE} to "
                         f"{MAX_TEMPERATURE} (got {value!r:.30})")
    return float(value)


def _classes(payload: dict, recipe: Recipe, origin: Path) -> tuple[str, ...]:
    """The sidecar's class names; a sidecar written before they were recorded is of the digits."""
    if "classes" not in payload and recipe.dataset != "idx":
        return default_classes(recipe.dataset, 10)
    classes = payload.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise LenetError(f"{origin}: field classes is missing or not a list of at least two names")
    for index, name in enumerate(classes):
        if (character := control_character(name)) is not None:
            raise LenetError(f"{origin}: field classes: name {index} holds the control character {character}")
    return tuple(classes)


def _chosen_step(model_dir: Path, steps: list[int], step: int | None) -> int:
    """STEP, or the newest of STEPS (MODEL_DIR's checkpoints) when None; refused when it is not among them."""
    if not steps:
        raise LenetError(f"{model_dir}: no checkpoint found (train one with `lenet train --model-dir {model_dir}`)")
    step = steps[-1] if step is None else step
    if step not in steps:
        raise LenetError(f"{model_dir}: no checkpoint for step {step}; available: {steps}")
    return step


def _read_evaluation_weights(model_dir: Path, step: int) -> tuple[Checkpoint, dict[str, torch.Tensor]]:
    """What checkpoint STEP's sidecar says and its evaluation weights, checked against the sidecar's checksum."""
    weights_path, _, sidecar_path = _paths(model_dir, step)
    checkpoint = _checkpoint_from_json(read_json(sidecar_path), model_dir, step, sidecar_path)
    weights_bytes = read_file_bytes(weights_path) if weights_path.exists() else b""
    if hashlib.sha256(weights_bytes).hexdigest() != checkpoint.weights_sha256:
        raise LenetError(f"{weights_path}: missing or does not match the checksum in {sidecar_path.name}")
    # The bytes checked, not the file again: it may have been replaced since.
    return checkpoint, _tensors_from_bytes(weights_bytes, weights_path)


def read_checkpoint(model_dir: str | Path, step: int | None = None
                    ) -> tuple[Checkpoint, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(what the sidecar says, evaluation weights, state tensors) of checkpoint STEP, the newest by default.

    A damaged checkpoint is refused, never passed over: resuming from an older one would drop the steps
    trained since (readers that may fall back use load_intact_model)."""
    model_dir = require_model_dir(model_dir)
    step = _chosen_step(model_dir, list_checkpoints(model_dir), step)
    checkpoint, weights = _read_evaluation_weights(model_dir, step)
    return checkpoint, weights, _load_tensors(_paths(model_dir, step)[1])


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], origin: str) -> None:
    """Copy WEIGHTS into MODEL, refusing missing, unexpected, mis-shaped or non-finite tensors, and any of
    another dtype than the network's (an int8 or bool tensor is refused, not cast)."""
    expected = model.state_dict()
    if set(expected) != set(weights):
        missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
        raise LenetError(f"{origin}: weights do not fit the network (missing {missing}, unexpected {extra})")
    for name, tensor in weights.items():
        if tensor.shape != expected[name].shape:
            raise LenetError(f"{origin}: {name} has shape {tuple(tensor.shape)}, "
                             f"the network expects {tuple(expected[name].shape)}")
        if tensor.dtype != expected[name].dtype:
            raise LenetError(f"{origin}: {name} is {tensor.dtype}, the network expects {expected[name].dtype}")
    check_finite_weights(((name, tensor.numpy()) for name, tensor in weights.items() if tensor.is_floating_point()),
                         origin)
    model.load_state_dict(weights)


def _network(model_dir: Path, step: int, device: str | torch.device) -> tuple[nn.Module, Checkpoint]:
    checkpoint, weights = _read_evaluation_weights(model_dir, step)
    model = build_model(checkpoint.recipe.model, num_classes=len(checkpoint.classes))
    load_weights(model, weights, str(model_dir))
    # NHWC weights make oneDNN and cuDNN convolve in the faster channels-last layout.
    return model.to(device, memory_format=torch.channels_last).eval(), checkpoint


def load_model(model_dir: str | Path, device: str | torch.device = "cpu",
               step: int | None = None) -> tuple[nn.Module, Checkpoint]:
    """The network of MODEL_DIR's checkpoint STEP (the newest by default) with its evaluation weights, in
    eval mode, and what its checkpoint says."""
    model_dir = require_model_dir(model_dir)
    return _network(model_dir, _chosen_step(model_dir, list_checkpoints(model_dir), step), device)


@dataclass(frozen=True)
class SkippedCheckpoint:
    """A damaged checkpoint that load_intact_model passed over for an older one, and why."""
    step: int
    reason: str  # the error reading it gave


# How many times load_intact_model lists a model directory again when a checkpoint it listed was removed
# before it could be read. A run prunes the oldest as it writes a new one, which then stays until the
# next is written: one more listing is nearly always enough, a few allow for a run checkpointing very often.
PRUNED_RETRIES = 5


def load_intact_model(model_dir: str | Path, device: str | torch.device = "cpu", step: int | None = None
                      ) -> tuple[nn.Module, Checkpoint, tuple[SkippedCheckpoint, ...]]:
    """load_model for those that read a model directory while a training run may write into it (eval,
    predict, serve, export...): a checkpoint removed between listing and reading is looked for again in
    a new listing; without STEP, a damaged newest checkpoint is passed over for the newest intact one,
    and the ones passed over are returned, newest first. When every checkpoint is damaged, the newest's
    error is raised."""
    model_dir = require_model_dir(model_dir)
    removed = None
    for _ in range(PRUNED_RETRIES + 1):
        steps = list_checkpoints(model_dir)
        newest = _chosen_step(model_dir, steps, step)
        skipped: list[SkippedCheckpoint] = []
        newest_error = None
        for candidate in [newest] if step is not None else steps[::-1]:
            try:
                network, checkpoint = _network(model_dir, candidate, device)
                return network, checkpoint, tuple(skipped)
            except LenetError as error:
                # The sidecar goes first when a checkpoint is pruned: gone now, it was pruned, not damaged.
                if candidate not in list_checkpoints(model_dir):
                    removed = error
                    break
                if step is not None:
                    raise
                newest_error = newest_error or error
                skipped.append(SkippedCheckpoint(candidate, str(error)))
        else:
            raise newest_error
    raise LenetError(f"{model_dir}: checkpoints were removed faster than they could be read ({removed}); "
                     f"try again")


def rng_states(device: torch.device) -> dict[str, torch.Tensor]:
    """This process's generator states (CPU, and the GPU's when training on one)."""
    states = {_RNG_CPU: torch.get_rng_state()}
    if device.type == "cuda":
        states[_RNG_CUDA] = torch.cuda.get_rng_state(device)
    return states


def resume_state(model: nn.Module, optimizer: torch.optim.Optimizer, averaged: bool,
                 rank_rng_states: list[dict[str, torch.Tensor]]) -> tuple[dict[str, torch.Tensor], dict]:
    """What resuming needs besides the evaluation weights: (tensors for the state file, the optimizer's
    JSON settings for the sidecar). RANK_RNG_STATES holds rng_states() of each rank (one for a single
    process). The raw weights are saved only when the evaluation weights are an average (otherwise
    they are the evaluation weights)."""
    tensors = {_rank_key(key, rank): state for rank, states in enumerate(rank_rng_states)
               for key, state in states.items()}
    if averaged:
        tensors.update({_RAW + k: v for k, v in model.state_dict().items()})
    state = optimizer.state_dict()
    scalars = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{_OPTIMIZER}{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_resume_state(checkpoint: Checkpoint, tensors: dict[str, torch.Tensor], model: nn.Module,
                         optimizer: torch.optim.Optimizer, averaged: bool, rank: int = 0) -> None:
    """Put back what resume_state saved: raw weights, optimizer state and RANK's RNG states. A rank
    the checkpoint has no state for (the run had fewer ranks) is seeded from the recipe's seed, its
    rank and the step, so its dropout differs from the other ranks' and is the same on every retry."""
    origin = f"{checkpoint.model_dir} (checkpoint {checkpoint.step})"
    _check_state_keys(tensors, averaged, origin)
    if averaged:
        load_weights(model, {k[len(_RAW):]: v for k, v in tensors.items() if k.startswith(_RAW)}, origin)
    state: dict[int, dict] = {}
    try:
        for name, value in tensors.items():
            if name.startswith(_OPTIMIZER):
                index, key = name[len(_OPTIMIZER):].split(".", 1)
                state.setdefault(int(index), {})[key] = value
        for name, value in checkpoint.optimizer["scalars"].items():
            index, key = name.split(".", 1)
            state.setdefault(int(index), {})[key] = value
        _check_optimizer_state(state, optimizer)
        _check_param_groups(checkpoint.optimizer["param_groups"], optimizer)
        optimizer.load_state_dict({"state": state, "param_groups": checkpoint.optimizer["param_groups"]})
        device = model_device(model)
        if _rank_key(_RNG_CPU, rank) in tensors:
            _check_rng_state(tensors[_rank_key(_RNG_CPU, rank)], torch.get_rng_state(), _rank_key(_RNG_CPU, rank))
            torch.set_rng_state(tensors[_rank_key(_RNG_CPU, rank)])
            if device.type == "cuda" and _rank_key(_RNG_CUDA, rank) in tensors:
                torch.cuda.set_rng_state(tensors[_rank_key(_RNG_CUDA, rank)], device)
        elif rank > 0:
            torch.manual_seed(rank_seed(checkpoint.recipe.seed, rank, checkpoint.step))
        else:
            raise KeyError(_RNG_CPU)
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as error:
        raise LenetError(f"{origin}: the resume state is damaged ({type(error).__name__}: {error}"[:300] + ")") \
            from None


# The state file's keys resume_state writes: RNG states of any rank, raw weights, optimizer tensors.
_STATE_KEY = re.compile(r"^(?:rng\.(?:cpu|cuda)(?:\.rank-[1-9]\d*)?|raw\..+|optimizer\.\d+\.[A-Za-z_]\w*)$")


def _check_state_keys(tensors: dict[str, torch.Tensor], averaged: bool, origin: str) -> None:
    """Refuse a state file holding keys resume_state never writes, or raw weights it should not have."""
    unknown = sorted(k for k in tensors if not _STATE_KEY.match(k) or k.startswith(_RAW) and not averaged)
    if unknown:
        raise LenetError(f"{origin}: the resume state is damaged (unexpected keys {unknown[:5]})"[:300])


def _check_rng_state(state: torch.Tensor, current: torch.Tensor, key: str) -> None:
    """Refuse (ValueError) a generator state of another dtype or shape than the generator's own."""
    if state.dtype != current.dtype or state.shape != current.shape:
        raise ValueError(f"{key} is {state.dtype} of shape {tuple(state.shape)}, the generator's "
                         f"{current.dtype} of shape {tuple(current.shape)}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_param_groups(saved: object, optimizer: torch.optim.Optimizer) -> None:
    """Refuse (ValueError) saved optimizer settings whose groups, keys or value types differ from the
    optimizer's own: torch takes any JSON value for a learning rate and fails steps later, or not at all."""
    if not isinstance(saved, list) or len(saved) != len(optimizer.param_groups):
        raise ValueError(f"param_groups is not a list of {len(optimizer.param_groups)} groups")
    for group, current in zip(saved, optimizer.param_groups):
        if not isinstance(group, dict) or set(group) != set(current):
            raise ValueError(f"param_groups keys {sorted(group) if isinstance(group, dict) else group!r:.80}, "
                             f"the optimizer's {sorted(current)}")
        for key, value in group.items():
            if key == "params":
                continue  # torch checks these against the parameters
            if not _same_kind(value, current[key]):
                raise ValueError(f"param_groups {key} is {value!r:.40}, expected a {type(current[key]).__name__}")


def _same_kind(value: object, expected: object) -> bool:
    """Whether a JSON VALUE can stand for EXPECTED: a finite number for a number, a list for a tuple
    (JSON has no tuples: Adam's betas come back as a list), else the same type."""
    if _is_number(expected):
        return _is_number(value) and math.isfinite(value)
    if isinstance(expected, (list, tuple)):
        return isinstance(value, (list, tuple)) and len(value) == len(expected) and \
            all(_same_kind(v, e) for v, e in zip(value, expected))
    return type(value) is type(expected)


def _check_optimizer_state(state: dict[int, dict], optimizer: torch.optim.Optimizer) -> None:
    """Refuse saved optimizer tensors that do not belong to the network's parameters (ValueError)."""
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    # After a step every torch optimizer keeps the same entries for each parameter (SGD a momentum_buffer,
    # None without momentum): a parameter without them would silently restart its momentum.
    if state and (set(state) != set(range(len(parameters))) or len({frozenset(v) for v in state.values()}) != 1):
        raise ValueError(f"the optimizer state does not hold the same entries for each of the "
                         f"{len(parameters)} parameters")
    for index, values in state.items():
        if not 0 <= index < len(parameters):
            raise ValueError(f"optimizer state for parameter {index}, the network has {len(parameters)}")
        for key, value in values.items():
            if torch.is_tensor(value) and value.dtype != parameters[index].dtype and value.dim() > 0:
                raise ValueError(f"optimizer.{index}.{key} is {value.dtype}, its parameter {parameters[index].dtype}")
            if torch.is_tensor(value) and value.dim() > 0 and value.shape != parameters[index].shape:
                raise ValueError(f"optimizer.{index}.{key} has shape {tuple(value.shape)}, "
                                 f"its parameter {tuple(parameters[index].shape)}")
            if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all():
                raise ValueError(f"optimizer.{index}.{key} holds NaN or infinite values")


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """The generator seed of a rank other than 0 (rank 0 keeps the recipe's own stream), from STEP on."""
    return ((seed * 65_536 + rank) * 1_000_003 + step) % 2 ** 63
