"""Baseline: the seed-000 tutorial CNN written as idiomatic PyTorch (Dataset + DataLoader, per-sample tensors).

This is how the network is usually written by hand: a Dataset returning one (image, label) pair
at a time, a shuffling DataLoader collating batches, nn.Sequential with padding=2 (SAME for a
5x5 kernel at stride 1), the seed's initialization (truncated normal, stddev 0.1; dense biases
0.1), SGD with an exponentially decayed rate, L2 on the dense weights added to the loss, and an
EMA of the weights (AveragedModel, with the tutorial's warm-up of the decay). Prints one JSON object.

Usage: python benchmarks/baselines/torch_dataloader.py --steps 300 [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Dataset


def read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def find(data_dir: Path, stem: str) -> Path:
    return next(p for p in (data_dir / stem, data_dir / f"{stem}.gz") if p.exists())


class MnistDataset(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = torch.from_numpy(self.images[index].astype(np.float32) / 255.0).unsqueeze(0)
        return image, int(self.labels[index])


def build_model() -> nn.Module:
    model = nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(7 * 7 * 64, 512), nn.ReLU(), nn.Dropout(0.5), nn.Linear(512, 10))
    # The seed's tf.truncated_normal(stddev=0.1) weights; biases 0 (convolutions) and 0.1 (dense).
    for layer in model:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(layer.weight, std=0.1, a=-0.2, b=0.2)
            nn.init.constant_(layer.bias, 0.1 if isinstance(layer, nn.Linear) else 0.0)
    return model


def tutorial_ema(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
    """tf.train.ExponentialMovingAverage(0.99, num_updates): the decay warms up as min(0.99, (1+n)/(10+n))."""
    decay = min(0.99, (1 + num_averaged.item()) / (10 + num_averaged.item()))
    return decay * averaged + (1 - decay) * current


WARMUP_STEPS = 20  # steps run before the clock starts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--data-dir", default=os.environ.get("LENET_DATA_DIR"))
    parser.add_argument("--infer-batch", type=int, default=1000)
    args = parser.parse_args()
    if args.steps <= WARMUP_STEPS:
        parser.error(f"--steps must be more than {WARMUP_STEPS}, the untimed warm-up")
    if not args.data_dir:
        parser.error("no MNIST directory: pass --data-dir or set LENET_DATA_DIR")
    torch.manual_seed(0)
    data_dir = Path(args.data_dir)
    train_set = MnistDataset(read_idx(find(data_dir, "train-images-idx3-ubyte"))[:55_000],
                             read_idx(find(data_dir, "train-labels-idx1-ubyte"))[:55_000])
    test_images = read_idx(find(data_dir, "t10k-images-idx3-ubyte"))
    test_labels = torch.from_numpy(read_idx(find(data_dir, "t10k-labels-idx1-ubyte")).astype(np.int64))
    loader = DataLoader(train_set, batch_size=100, shuffle=True, drop_last=True)

    model = build_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.99 ** (step // 550))
    average = AveragedModel(model, avg_fn=tutorial_ema)
    dense_weights = [model[7].weight, model[10].weight]
    loss_fn = nn.CrossEntropyLoss()

    step, timed_images = 0, 0
    start = None
    model.train()
    while step < args.steps:
        for images, labels in loader:
            if step == WARMUP_STEPS:
                start = time.perf_counter()
            loss = loss_fn(model(images), labels) + 1e-4 * sum((w ** 2).sum() for w in dense_weights) / 2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            average.update_parameters(model)
            step += 1
            if step > WARMUP_STEPS:
                timed_images += len(labels)
            if step == args.steps:
                break
    train_rate = timed_images / (time.perf_counter() - start)

    evaluation = average.module.eval()
    test = torch.from_numpy(test_images.astype(np.float32) / 255.0).unsqueeze(1)
    with torch.no_grad():
        evaluation(test[:args.infer_batch])  # warm-up
        start = time.perf_counter()
        logits = torch.cat([evaluation(test[i:i + args.infer_batch]) for i in range(0, len(test), args.infer_batch)])
        infer_rate = len(test) / (time.perf_counter() - start)
    print(json.dumps({"implementation": "pytorch-dataloader", "steps": args.steps, "batch_size": 100,
                      "train_images_per_s": round(train_rate), "infer_images_per_s": round(infer_rate),
                      "test_accuracy": (logits.argmax(1) == test_labels).double().mean().item(),
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
