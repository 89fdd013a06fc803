"""Seeded mutations of the files lenet reads, and the runs that feed them through the functions the CLI uses.

Each class (`images`, `idx`, `checkpoints`) is a function `fuzz_<class>(cases, seed) -> dict` returning the
figures benchmarks/fuzzing/fuzz.py prints: cases tried, tracebacks (an exception other than LenetError), hangs (a
case over CASE_LIMIT_S), wrong answers (an answer that cannot be right: a NaN or out-of-range input, a
checkpoint accepted after a change lenet never writes). tests/test_fuzz.py runs the same functions briefly.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import random
import shutil
import signal
import tempfile
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from lenet.errors import LenetError

CASE_LIMIT_S = 5.0  # one case: decoding a 40-Mpixel picture takes about 1 s on one core


class Hang(Exception):
    """A case ran past CASE_LIMIT_S."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expire(signum, frame):
        raise Hang()
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Figures:
    """The counts one class reports, with the first few failures kept for reading."""

    def __init__(self):
        self.counts = {"cases": 0, "tracebacks": 0, "hangs": 0, "wrong_answers": 0}
        self.examples: list[str] = []

    def run(self, label: str, case: Callable[[], str | None]) -> None:
        """Run CASE; it returns None when its answer is right (or refused as a LenetError), else why it is wrong."""
        self.counts["cases"] += 1
        try:
            with time_limit(CASE_LIMIT_S):
                try:
                    wrong = case()
                except LenetError:
                    wrong = None
        except Hang:
            self._fail("hangs", f"{label}: over {CASE_LIMIT_S} s")
            return
        except Exception as error:  # noqa: BLE001 -- counting exactly these is the point
            self._fail("tracebacks", f"{label}: {type(error).__name__}: {error} "
                       f"({traceback.extract_tb(error.__traceback__)[-1].filename.split('/')[-1]}:"
                       f"{traceback.extract_tb(error.__traceback__)[-1].lineno})"[:400])
            return
        if wrong:
            self._fail("wrong_answers", f"{label}: {wrong}"[:400])

    def _fail(self, kind: str, example: str) -> None:
        self.counts[kind] += 1
        if len(self.examples) < 20:
            self.examples.append(example)

    def result(self) -> dict:
        return {**self.counts, "examples": self.examples}


def mutate_bytes(raw: bytes, rng: random.Random, header_bytes: int = 64) -> bytes:
    """RAW with one to four random edits: byte flips (mostly in the header, where parsers decide sizes),
    interesting values (0, 0xFF, 0x7F, 0x80) written as bytes or 32-bit integers, truncation, a
    duplicated or deleted span."""
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        if not data:
            break
        where = rng.randrange(min(len(data), header_bytes)) if rng.random() < 0.7 else rng.randrange(len(data))
        kind = rng.randrange(6)
        if kind == 0:
            data[where] ^= 1 << rng.randrange(8)
        elif kind == 1:
            data[where] = rng.choice((0, 0xFF, 0x7F, 0x80, 1, rng.randrange(256)))
        elif kind == 2:
            value = rng.choice((0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 65536, rng.randrange(2 ** 32)))
            data[where:where + 4] = value.to_bytes(4, rng.choice(("big", "little")))
        elif kind == 3:
            del data[rng.randrange(len(data)):]
        elif kind == 4:
            end = min(len(data), where + rng.randint(1, 64))
            data[where:where] = data[where:end]
        else:
            del data[where:where + rng.randint(1, 64)]
    return bytes(data)


def check_inputs(inputs: np.ndarray) -> str | None:
    """Why INPUTS cannot be a model's inputs (not float32 in [0, 1] of shape (N, 28, 28), N > 0), or None."""
    if inputs.ndim != 3 or inputs.shape[1:] != (28, 28) or not len(inputs):
        return f"inputs of shape {inputs.shape}"
    if inputs.dtype != np.float32 or not np.isfinite(inputs).all() or inputs.min() < 0 or inputs.max() > 1:
        return f"inputs not float32 in [0, 1] ({inputs.dtype}, {np.nanmin(inputs)}..{np.nanmax(inputs)})"
    return None


# --- images -----------------------------------------------------------------------------------------

def picture_seeds() -> dict[str, bytes]:
    """One small picture of a digit-like stroke in every format (and mode) Pillow writes that lenet may meet."""
    from PIL import Image
    stroke = np.full((28, 28), 230, np.uint8)
    stroke[5:23, 12:16] = 20
    gray = Image.fromarray(stroke)
    seeds = {}
    for name, picture, fmt in [
        ("png", gray, "PNG"), ("jpeg", gray, "JPEG"), ("gif", gray, "GIF"), ("bmp", gray, "BMP"),
        ("tiff", gray, "TIFF"), ("webp", gray, "WEBP"), ("ico", gray, "ICO"), ("tga", gray, "TGA"),
        ("ppm", gray.convert("RGB"), "PPM"), ("pgm", gray, "PPM"), ("spider", gray.convert("F"), "SPIDER"),
        ("dds", gray.convert("RGB"), "DDS"), ("png-rgba", gray.convert("RGBA"), "PNG"),
        ("png-palette", gray.convert("P"), "PNG"), ("png-1bit", gray.convert("1"), "PNG"),
        ("png-i16", Image.fromarray(stroke.astype(np.uint16) * 257), "PNG"),
        ("tiff-float", Image.fromarray(stroke.astype(np.float32) / 255), "TIFF"),
        ("tiff-i32", Image.fromarray(stroke.astype(np.int32) * 257), "TIFF"),
        ("tiff-cmyk", gray.convert("CMYK"), "TIFF"), ("jpeg-cmyk", gray.convert("CMYK"), "JPEG"),
        ("pcx", gray, "PCX"), ("im", gray, "IM"), ("sgi", gray, "SGI"), ("xbm", gray.convert("1"), "XBM"),
        ("qoi", gray.convert("RGB"), "QOI"), ("jpeg2000", gray, "JPEG2000"), ("eps-free-tiff-lzw", gray, "TIFF"),
    ]:
        buffer = io.BytesIO()
        try:
            picture.save(buffer, format=fmt, **({"compression": "tiff_lzw"} if name.endswith("lzw") else {}))
        except (KeyError, OSError, ValueError):  # a codec this Pillow was built without
            continue
        seeds[name] = buffer.getvalue()
    return seeds


def _fuzz_files(kind: str, seeds: dict[str, bytes], cases: int, seed: int, header_bytes, file_name) -> dict:
    """Mutated SEEDS (HEADER_BYTES(name) of each mostly edited) read by pictures.inputs.inputs_from_bytes, as
    `lenet predict` reads a file named FILE_NAME(index, name)."""
    from lenet.pictures.inputs import inputs_from_bytes
    rng, figures, names = random.Random(seed), Figures(), sorted(seeds)
    for index in range(cases):
        name = names[index % len(names)]
        payload, path = mutate_bytes(seeds[name], rng, header_bytes(name)), file_name(index, name)
        figures.run(f"{kind} case {index} ({name})", lambda: check_inputs(inputs_from_bytes(payload, path)[0]))
    return {**figures.result(), "formats" if kind == "images" else "kinds": names}


def fuzz_images(cases: int, seed: int) -> dict:
    """Mutated pictures of every format, as `lenet predict` reads them."""
    return _fuzz_files("images", picture_seeds(), cases, seed, lambda name: 64,
                       lambda index, name: f"case-{index}.{name}")


# --- idx and .npy -------------------------------------------------------------------------------------

def array_seeds() -> dict[str, bytes]:
    """IDX files of each type code and .npy files of several dtypes, raw and gzip-compressed, of 28x28 images."""
    import gzip
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    seeds = {}
    for code, dtype in ((0x08, ">u1"), (0x09, ">i1"), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"), (0x0E, ">f8")):
        array = images.astype(dtype) if code == 0x08 else (images / 255).astype(dtype) if code >= 0x0D \
            else (images > 128).astype(dtype)
        seeds[f"idx-{code:02x}"] = bytes([0, 0, code, 3]) + b"".join(d.to_bytes(4, "big") for d in array.shape) + \
            array.tobytes()
    seeds["idx-gz"] = gzip.compress(seeds["idx-08"])
    for dtype in ("u1", "<f4", ">f8", "<i2"):
        buffer = io.BytesIO()
        array = images if dtype == "u1" else (images / 255).astype(dtype) if "f" in dtype else (images > 128).astype(dtype)
        np.save(buffer, array)
        seeds[f"npy-{dtype}"] = buffer.getvalue()
    fortran = io.BytesIO()
    np.save(fortran, np.asfortranarray(images.reshape(3, 784)))
    seeds["npy-fortran"] = fortran.getvalue()
    return seeds


def fuzz_idx(cases: int, seed: int) -> dict:
    """Mutated IDX and .npy files (header mostly), as `lenet predict` reads them."""
    return _fuzz_files("idx", array_seeds(), cases, seed, lambda name: 128 if name.startswith("npy") else 20,
                       lambda index, name: f"case-{index}.npy" if name.startswith("npy") else f"case-{index}-idx3-ubyte")


# --- checkpoints ----------------------------------------------------------------------------------------

CHECKPOINT_STEP = 4
_STEM = f"{CHECKPOINT_STEP:08d}"
_SIDECAR, _WEIGHTS, _STATE, _RECIPE = f"model-{_STEM}.json", f"model-{_STEM}.safetensors", \
    f"state-{_STEM}.safetensors", "recipe.json"

def make_model_dir(directory: Path) -> None:
    """A model directory of checkpoint CHECKPOINT_STEP: LeNet-5 with momentum (optimizer tensors) and an
    EMA (raw weights in the state file), trained a few steps on noise."""
    import torch

    from lenet.data import Dataset
    from lenet.recipes import get_recipe, override
    from lenet.training import train
    generator = torch.Generator().manual_seed(0)

    def split(n):
        return torch.randint(0, 256, (n, 28, 28), generator=generator, dtype=torch.uint8), \
            torch.randint(0, 10, (n,), generator=generator)
    data = Dataset(*split(200), *split(40), *split(40), sha256={"noise": "0"})
    recipe = override(get_recipe("lenet5"), optimizer="momentum", ema_decay=0.9, total_steps=CHECKPOINT_STEP,
                      batch_size=20, log_every_steps=2, eval_every_steps=CHECKPOINT_STEP,
                      checkpoint_every_steps=CHECKPOINT_STEP)
    train(recipe, directory, data, tensorboard=False)


def _json_value(rng: random.Random, depth: int = 0):
    """A random JSON value, including the awkward ones: huge and negative integers, NaN, deep nesting."""
    choice = rng.randrange(12)
    if choice == 0:
        return rng.choice([0, 1, -1, 2 ** 63, 10 ** 30, -(10 ** 30), CHECKPOINT_STEP, 25])
    if choice == 1:
        return rng.choice([0.0, 1e308, -1e-308, float("nan"), float("inf"), 0.5])
    if choice == 2:
        return rng.choice(["", "x", "50", "nan", "trained", "moving_average", "mnist", "sgd", "../etc/passwd"])
    if choice == 3:
        return rng.choice([True, False, None])
    if choice == 4 and depth < 3:
        return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if choice == 5 and depth < 3:
        return {rng.choice(["a", "lr", "step", "params"]): _json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if choice == 6:
        return json.loads("[" * 50 + "]" * 50)
    return rng.choice([0, "x", [], {}, None, 1.5])


def _paths_in(value, prefix=()) -> list[tuple]:
    """Every key path into a JSON value (dict keys and list indices)."""
    paths = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            paths += _paths_in(item, prefix + (key,))
    elif isinstance(value, list):
        for key, item in enumerate(value[:8]):
            paths += _paths_in(item, prefix + (key,))
    return paths


def mutate_json(payload: dict, rng: random.Random) -> dict:
    """PAYLOAD with one value replaced, deleted, or a key added, at a random path."""
    payload = copy.deepcopy(payload)
    path = rng.choice(_paths_in(payload)[1:])
    parent = payload
    for key in path[:-1]:
        parent = parent[key]
    kind = rng.randrange(4)
    if kind == 0 and isinstance(parent, dict):
        del parent[path[-1]]
    elif kind == 1 and isinstance(parent, dict):
        parent[rng.choice(["extra", "zzz"])] = _json_value(rng)
    else:
        parent[path[-1]] = _json_value(rng)
    return payload


def _mutate_tensors(tensors: dict, rng: random.Random) -> tuple[dict, str]:
    """TENSORS with one change lenet never writes (a dtype, a shape, a NaN, a key); returns it and the change."""
    import torch
    tensors = dict(tensors)
    name = rng.choice(sorted(tensors))
    tensor = tensors[name]
    kind = rng.randrange(7)
    if kind == 0:
        dtype = rng.choice([torch.int8, torch.bool, torch.float16, torch.float64, torch.bfloat16, torch.int64,
                            torch.uint8])
        if dtype == tensor.dtype:
            dtype = torch.float16 if dtype != torch.float16 else torch.int8
        tensors[name] = tensor.to(dtype)
        return tensors, f"{name} as {dtype}"
    if kind == 1:
        tensors[name] = tensor.reshape(-1)[: max(0, tensor.numel() - rng.randint(1, 3))].clone() \
            if rng.random() < 0.5 else tensor.reshape(1, -1).clone()
        return tensors, f"{name} reshaped to {tuple(tensors[name].shape)}"
    if kind == 2 and tensor.is_floating_point() and tensor.numel():
        changed = tensor.clone()
        changed.view(-1)[rng.randrange(changed.numel())] = rng.choice([float("nan"), float("inf"), -float("inf")])
        tensors[name] = changed
        return tensors, f"{name} holds a non-finite value"
    if kind == 3:
        del tensors[name]
        return tensors, f"{name} removed"
    if kind == 4:
        tensors[rng.choice(["junk", "optimizer.x.y", "optimizer.99.momentum_buffer", "raw.extra", "rng.cpu.rank-x",
                            name + ".extra"])] = torch.zeros(rng.randint(0, 4))
        return tensors, "a key added"
    tensors[name] = torch.zeros(0, dtype=tensor.dtype)
    return tensors, f"{name} emptied"


class _CheckpointFuzz:
    """A pristine model directory, and a working copy that each case damages and restores."""

    def __init__(self, root: Path):
        from safetensors.torch import load
        self.pristine, self.work = root / "pristine", root / "work"
        make_model_dir(self.pristine)
        shutil.copytree(self.pristine, self.work, ignore=shutil.ignore_patterns("train.lock"))
        self.originals = {name: (self.pristine / name).read_bytes() for name in (_SIDECAR, _WEIGHTS, _STATE, _RECIPE)}
        self.sidecar, self.recipe = json.loads(self.originals[_SIDECAR]), json.loads(self.originals[_RECIPE])
        self.weights, self.state = load(self.originals[_WEIGHTS]), load(self.originals[_STATE])

    def restore(self) -> None:
        for name, raw in self.originals.items():
            (self.work / name).write_bytes(raw)

    def damage(self, rng: random.Random) -> tuple[str, str | None, bool]:
        """Damage one file of the working copy; returns (what, must_refuse reason or None, reaches resume only)."""
        from safetensors.torch import save
        target = rng.randrange(4)
        if target == 0:  # model-N.json, its weights checksum still right
            payload = mutate_json(self.sidecar, rng)
            text = json.dumps(payload, allow_nan=True)
            if rng.random() < 0.05:
                text = rng.choice(["[" * 100_000, '{"step": ' + "9" * 5000 + "}", text[: len(text) // 2], ""])
            (self.work / _SIDECAR).write_text(text)
            return f"{_SIDECAR}: {text[:120]}", None, False
        if target == 1:  # recipe.json
            payload = mutate_json(self.recipe, rng)
            (self.work / _RECIPE).write_text(json.dumps(payload, allow_nan=True))
            return f"{_RECIPE}: {json.dumps(payload)[:120]}", self._recipe_change(payload), False
        if target == 2:  # model-N.safetensors, the checksum recomputed so the checks behind it are reached
            tensors, change = _mutate_tensors(self.weights, rng)
            raw = save(tensors)
            (self.work / _WEIGHTS).write_bytes(raw)
            sidecar = dict(self.sidecar, weights_sha256=hashlib.sha256(raw).hexdigest())
            (self.work / _SIDECAR).write_text(json.dumps(sidecar))
            return f"{_WEIGHTS}: {change}", change, False
        tensors, change = _mutate_tensors(self.state, rng)  # state-N.safetensors (it has no checksum)
        (self.work / _STATE).write_bytes(save(tensors))
        return f"{_STATE}: {change}", change, True

    def _recipe_change(self, payload: dict) -> str | None:
        """Why resuming with PAYLOAD as recipe.json must be refused, if it must (a missing field takes its
        default, and total_steps may grow: neither changes what the run trains)."""
        from lenet.recipes import Recipe
        try:
            edited, stored = Recipe.from_dict(payload, "recipe.json"), Recipe.from_dict(self.recipe, "recipe.json")
        except LenetError:
            return None  # refused as a recipe anyway
        changed = [k for k, v in edited.to_dict().items() if k != "total_steps" and v != stored.to_dict()[k]]
        return f"recipe.json changes {changed}" if changed else None

    def load_and_resume(self) -> None:
        """What eval/predict/serve/export do (inference.open_model) and what `lenet train` does to resume."""
        from lenet.checkpoint import check_resumable, resolve_recipe
        from lenet.inference import open_model
        from lenet.models import build_model
        from lenet.training import WeightAverage, _resume, build_optimizer
        model = open_model(self.work)
        probabilities = model.probabilities(np.zeros((1, 28, 28), np.uint8))
        if not np.isfinite(probabilities).all():
            raise AssertionError("NaN probabilities")
        recipe = resolve_recipe(self.work)
        check_resumable(self.work, recipe)
        network = build_model(recipe.model, num_classes=model.num_classes)
        average = WeightAverage(network) if recipe.ema_decay else None
        _resume(self.work, recipe, _NoiseData(), network, average, build_optimizer(recipe, network), 0)


class _NoiseData:
    """What _resume reads of a data set: the checksums make_model_dir trained on."""
    sha256 = {"noise": "0"}


def fuzz_checkpoints(cases: int, seed: int) -> dict:
    """Damaged model-N.json, recipe.json, model-N.safetensors (checksum recomputed) and state-N.safetensors,
    each loaded as eval/predict/serve/export load it and resumed as `lenet train` resumes it."""
    import torch
    torch.set_num_threads(1)
    rng, figures = random.Random(seed), Figures()
    with tempfile.TemporaryDirectory(prefix="lenet-fuzz-") as root:
        fuzz = _CheckpointFuzz(Path(root))
        fuzz.load_and_resume()  # the pristine directory loads and resumes
        for index in range(cases):
            fuzz.restore()
            what, must_refuse, _ = fuzz.damage(rng)

            def case() -> str | None:
                try:
                    fuzz.load_and_resume()
                except LenetError:
                    return None
                return f"accepted although {must_refuse}" if must_refuse else None
            figures.run(f"checkpoints case {index} ({what})", case)
    return figures.result()


CLASSES = {"images": fuzz_images, "idx": fuzz_idx, "checkpoints": fuzz_checkpoints}
