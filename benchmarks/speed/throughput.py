"""lenet's training and inference speed, in images/s; prints one JSON object.

Training: `lenet.training.train` with the recipe's own settings (tutorial-cnn: SGD + decay + L2 +
EMA, batch 100) for --steps steps; the rate is the images over the seconds of the log intervals
after the first two (warm-up), beside the whole run's (all steps over lenet's own training clock,
warm-up included); compilation (--compile) is reported apart. Inference: the evaluation weights over
the 10,000 test images in batches of --infer-batch, after one warm-up batch, with the same
precision, layout and compilation as training. On the CPU, inference is also measured through
the model exported to ONNX and run by onnxruntime (`lenet export --format onnx`, then `lenet
predict`/`lenet serve`/`lenet eval` on the .onnx file): the same images and batches, logits out.

Usage: LENET_DATA_DIR=... python benchmarks/speed/throughput.py [--steps 300] [--device cpu|cuda]
       [--recipe tutorial-cnn] [--model NAME] [--precision fp32|bf16] [--compile] [--no-channels-last] [--no-onnx]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time

import torch

from lenet import get_recipe, load_dataset
from lenet.results import StepLogged
from lenet.datasets import DATASET_NAMES
from lenet.checkpoint import load_model
from lenet.data import to_float
from lenet.execution import Execution, synchronize
from lenet.export import export_model
from lenet.inference import open_model
from lenet.recipes import override
from lenet.training import train
from lenet.testing.machine import describe


def images_per_second(run_batch, batches: list, images: int, finish=lambda: None) -> float:
    """IMAGES / the seconds RUN_BATCH takes over BATCHES, after one warm-up batch; FINISH waits for the device."""
    run_batch(batches[0])  # warm-up (and compilation)
    finish()
    start = time.perf_counter()
    for batch in batches:
        run_batch(batch)
    finish()
    return images / (time.perf_counter() - start)


def steady_rate(interval_rates: list[float]) -> float:
    """The training rate of a run from its log intervals' images/s, the first two left out as warm-up.

    The intervals all hold log_every_steps steps, so their total images over their total seconds
    is the harmonic mean of their rates; an arithmetic mean lets one fast interval on a noisy
    machine outweigh slow ones.
    """
    steady = interval_rates[2:] or interval_rates
    return len(steady) / sum(1 / rate for rate in steady)


@torch.no_grad()
def inference_rate(model: torch.nn.Module, images: torch.Tensor, batch_size: int, execution: Execution) -> float:
    """Images/s of MODEL over uint8 IMAGES already on its device, logits left on the device."""
    layout = torch.channels_last if execution.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    forward = torch.compile(model) if execution.compile else model
    batches = [to_float(images[i:i + batch_size]).contiguous(memory_format=layout)
               for i in range(0, len(images), batch_size)]

    def run_batch(batch: torch.Tensor) -> None:
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=execution.precision == "bf16"):
            forward(batch)

    return images_per_second(run_batch, batches, len(images), finish=lambda: synchronize(images.device))


def onnx_inference_rate(onnx_path: str, images: torch.Tensor, batch_size: int) -> float:
    """Images/s of lenet's onnxruntime predictor for an exported .onnx file over uint8 IMAGES (CPU)."""
    batches = [to_float(images[i:i + batch_size]).numpy() for i in range(0, len(images), batch_size)]
    return images_per_second(open_model(onnx_path).logits, batches, len(images))


def measure(recipe_name: str, steps: int, device: str, infer_batch: int, execution: Execution,
            onnx: bool = True, model_name: str | None = None, dataset: str = "mnist",
            data_dir: str | None = None) -> dict:
    data = load_dataset(dataset, data_dir)
    recipe = override(get_recipe(recipe_name), dataset=dataset, total_steps=steps, log_every_steps=max(steps // 10, 1),
                      eval_every_steps=steps, checkpoint_every_steps=steps)
    if model_name:
        recipe = override(recipe, model=model_name)
    rates = []
    with tempfile.TemporaryDirectory() as model_dir:
        start = time.perf_counter()
        result = train(recipe, model_dir, data, device, tensorboard=False, execution=execution,
                       report=lambda e: rates.append(e.images_per_s) if isinstance(e, StepLogged) else None)
        wall_s = time.perf_counter() - start
        model, _ = load_model(model_dir, device)
        onnx_rate = None
        if onnx and device == "cpu":
            onnx_path = str(export_model(model_dir, "onnx", f"{model_dir}/model.onnx"))
            onnx_rate = round(onnx_inference_rate(onnx_path, data.test_images, infer_batch))
    return {"implementation": "lenet", "recipe": recipe_name, "model": recipe.model, "steps": steps,
            "batch_size": recipe.batch_size,
            "device": device, "precision": execution.precision, "channels_last": execution.channels_last,
            "compile": execution.compile,
            "train_images_per_s": round(steady_rate(rates)),
            "train_images_per_s_whole_run": round(steps * recipe.batch_size / result["train_seconds"]),
            "infer_images_per_s": round(inference_rate(model, data.test_images.to(device), infer_batch, execution)),
            "infer_onnx_images_per_s": onnx_rate,
            "test_accuracy": result["test_accuracy"], "compile_s": round(result["compile_seconds"], 1),
            "wall_time_s": round(wall_s, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            **describe(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dataset", default="mnist", choices=DATASET_NAMES, help="what to train on (default mnist)")
    parser.add_argument("--data-dir", help="the data set's four IDX files (see `lenet train --help`)")
    parser.add_argument("--recipe", default="tutorial-cnn")
    parser.add_argument("--model", help="override the recipe's network (see `lenet models`)")
    parser.add_argument("--infer-batch", type=int, default=1000)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--onnx", action=argparse.BooleanOptionalAction, default=True,
                        help="on the CPU, also time inference through the ONNX export (fp32 whatever --precision)")
    args = parser.parse_args()
    execution = Execution(args.precision, args.channels_last, args.compile)
    print(json.dumps(measure(args.recipe, args.steps, args.device, args.infer_batch, execution, args.onnx,
                             args.model, args.dataset, args.data_dir)))


if __name__ == "__main__":
    main()
