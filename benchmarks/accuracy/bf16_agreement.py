"""Does bf16 inference give the same classes as fp32? One trained model over the whole test set, both
ways; prints one JSON object (agreement, both accuracies, both rates, the CPU kind).

bf16 autocast rounds the convolutions' and matrix products' inputs to 8 bits of mantissa and
accumulates in fp32, so the classes can change only where fp32's top two logits are close. The
agreement is a property of the rounding, not of the CPU's speed: on a CPU without bf16 arithmetic
(oneDNN emulates it) the same classes come out, only slower.

Usage: LENET_DATA_DIR=... python benchmarks/accuracy/bf16_agreement.py --model-dir runs/tutorial-cnn
       [--images N] [--dataset mnist]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from lenet import load_dataset
from lenet.datasets import DATASET_NAMES
from lenet.inference import CheckpointModel, batched_logits
from lenet.testing.machine import describe


def timed_logits(network: torch.nn.Module, images: torch.Tensor, bf16: bool) -> tuple[torch.Tensor, float]:
    started = time.perf_counter()
    logits = batched_logits(network, images, bf16=bf16).float()
    return logits, len(images) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--dataset", default="mnist", choices=DATASET_NAMES)
    parser.add_argument("--data-dir", help="the data set's four IDX files (see `lenet train --help`)")
    parser.add_argument("--images", type=int, help="only the first N test images (default all)")
    args = parser.parse_args()
    model = CheckpointModel(args.model_dir, "cpu")
    network = model.network("bf16 inference")
    data = load_dataset(args.dataset, args.data_dir)
    model.check_data(data)
    images, labels = data.test_images[:args.images], data.test_labels[:args.images]
    fp32, fp32_rate = timed_logits(network, images, bf16=False)
    bf16, bf16_rate = timed_logits(network, images, bf16=True)
    fp32_classes, bf16_classes = fp32.argmax(1), bf16.argmax(1)
    print(json.dumps({
        "model_dir": args.model_dir, "step": model.info.step, "test_images": len(labels),
        "same_class_fraction": round((fp32_classes == bf16_classes).float().mean().item(), 5),
        "different_classes": int((fp32_classes != bf16_classes).sum()),
        "fp32_test_accuracy": round((fp32_classes == labels).float().mean().item(), 5),
        "bf16_test_accuracy": round((bf16_classes == labels).float().mean().item(), 5),
        "max_abs_logit_difference": round((fp32 - bf16).abs().max().item(), 4),
        "fp32_images_per_s": round(fp32_rate), "bf16_images_per_s": round(bf16_rate),
        "machine": describe()}))


if __name__ == "__main__":
    main()
