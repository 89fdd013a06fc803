"""Checkpoints in a model directory: safetensors weights + JSON sidecar, atomic writes, retention.

For step N a checkpoint is three files, written in this order, each atomically:
  model-N.safetensors   the evaluation weights (averaged ones when the recipe averages)
  state-N.safetensors   what resuming needs besides: raw weights, optimizer tensors, RNG state
  model-N.json          recipe, step, metrics, dataset and weight checksums, optimizer settings
The JSON is written last, so a checkpoint exists exactly when its JSON does. Nothing is pickled.
A training run holds train.lock in the directory, so that two runs never write into one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from .data import atomic_write_bytes
from .errors import LenetError
from .models import build_model
from .recipes import Recipe

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not guarded against a second writer
    fcntl = None

FORMAT = "lenet-checkpoint-1"
RECIPE_FILE = "recipe.json"
LOCK_FILE = "train.lock"
_SIDECAR = re.compile(r"^model-(\d+)\.json$")


def _paths(model_dir: Path, step: int) -> tuple[Path, Path, Path]:
    stem = f"{step:08d}"
    return (model_dir / f"model-{stem}.safetensors", model_dir / f"state-{stem}.safetensors",
            model_dir / f"model-{stem}.json")


def write_json(path: Path, payload: dict) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> dict:
    try:
        payload = json.loads(path.read_text())
    except OSError as error:
        raise LenetError(f"{path}: cannot read ({error.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise LenetError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(payload, dict):
        raise LenetError(f"{path}: expected a JSON object")
    return payload


def _to_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    return save_safetensors({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()})


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_safetensors(path.read_bytes())
    except OSError as error:
        raise LenetError(f"{path}: cannot read ({error.strerror})") from None
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
        try:
            yield
        finally:
            lock.truncate(0)


def list_checkpoints(model_dir: str | Path) -> list[int]:
    """Steps of the complete checkpoints in MODEL_DIR, oldest first."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(m.group(1)) for p in model_dir.iterdir() if (m := _SIDECAR.match(p.name)))


def save_checkpoint(model_dir: str | Path, step: int, eval_weights: dict[str, torch.Tensor],
                    state_tensors: dict[str, torch.Tensor], metadata: dict, keep: int) -> Path:
    """Write checkpoint STEP and delete all but the KEEP newest; returns the sidecar path."""
    model_dir = Path(model_dir)
    weights_path, state_path, sidecar_path = _paths(model_dir, step)
    weights_bytes = _to_bytes(eval_weights)
    atomic_write_bytes(weights_path, weights_bytes)
    atomic_write_bytes(state_path, _to_bytes(state_tensors))
    write_json(sidecar_path, {**metadata, "format": FORMAT, "step": step,
                              "weights_file": weights_path.name, "state_file": state_path.name,
                              "weights_sha256": hashlib.sha256(weights_bytes).hexdigest()})
    for old_step in list_checkpoints(model_dir)[:-keep]:
        for path in reversed(_paths(model_dir, old_step)):  # sidecar first: never a dangling checkpoint
            path.unlink(missing_ok=True)
    return sidecar_path


def read_checkpoint(model_dir: str | Path, step: int | None = None
                    ) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(metadata, evaluation weights, state tensors) of checkpoint STEP, the newest by default."""
    model_dir = Path(model_dir)
    if model_dir.is_file():
        raise LenetError(f"{model_dir}: a file, not a model directory (of exported models lenet runs .onnx files only)")
    steps = list_checkpoints(model_dir)
    if not steps:
        raise LenetError(f"{model_dir}: no checkpoint found (train one with `lenet train --model-dir {model_dir}`)")
    step = steps[-1] if step is None else step
    if step not in steps:
        raise LenetError(f"{model_dir}: no checkpoint for step {step}; available: {steps}")
    weights_path, state_path, sidecar_path = _paths(model_dir, step)
    metadata = read_json(sidecar_path)
    if metadata.get("format") != FORMAT:
        raise LenetError(f"{sidecar_path}: unknown checkpoint format {metadata.get('format')!r}")
    weights_bytes = weights_path.read_bytes() if weights_path.is_file() else b""
    if hashlib.sha256(weights_bytes).hexdigest() != metadata.get("weights_sha256"):
        raise LenetError(f"{weights_path}: missing or does not match the checksum in {sidecar_path.name}")
    return metadata, _load_tensors(weights_path), _load_tensors(state_path)


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], origin: str) -> None:
    """Copy WEIGHTS into MODEL, refusing missing, unexpected or mis-shaped tensors."""
    expected = model.state_dict()
    if set(expected) != set(weights):
        missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
        raise LenetError(f"{origin}: weights do not fit the network (missing {missing}, unexpected {extra})")
    for name, tensor in weights.items():
        if tensor.shape != expected[name].shape:
            raise LenetError(f"{origin}: {name} has shape {tuple(tensor.shape)}, "
                             f"the network expects {tuple(expected[name].shape)}")
    model.load_state_dict(weights)


def load_model(model_dir: str | Path, device: str | torch.device = "cpu",
               step: int | None = None) -> tuple[nn.Module, dict]:
    """The network of MODEL_DIR with its evaluation weights, in eval mode, and the checkpoint metadata."""
    metadata, weights, _ = read_checkpoint(model_dir, step)
    recipe = Recipe.from_dict(metadata.get("recipe"), f"{model_dir} (checkpoint metadata)")
    model = build_model(recipe.model)
    load_weights(model, weights, str(model_dir))
    # NHWC weights make oneDNN and cuDNN convolve in the faster channels-last layout.
    return model.to(device, memory_format=torch.channels_last).eval(), metadata
