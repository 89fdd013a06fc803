"""The fastest public MNIST recipe, tuomaso/train_mnist_fast (its final notebook, "8_Final": 99.04% mean over
30 runs in 0.76 s on a laptop GPU), ported to plain PyTorch as published, for speedrun.py to time beside `fast`.

What the recipe is, and this port keeps:
- the data: all 60,000 training images, scaled to [0, 1] then normalized with mean 0.1307 and std 0.3081,
  shuffled once, held in memory; batches are contiguous slices, the last one partial (235 batches);
- the network: conv 1->24 5x5, max-pool 2, ReLU, conv 24->32 3x3, max-pool 2, ReLU, fc 800->256, ReLU,
  fc 256->10, log-softmax (PyTorch's default initialization);
- the training: one epoch, batch 256, Adam (lr 0.01, betas 0.7/0.9), OneCycleLR with max_lr 0.01 over
  the epoch's steps and cycle_momentum off (its defaults otherwise), NLL loss;
- the test: all 10,000 test images in batches of 2,000.

What differs: the published data were shuffled once by a DataLoader and saved with torch.save; here they
are read from the IDX files by lenet's loader and shuffled by a seeded permutation, so that each seed is
a different run (the notebook's runs differed only in their initialization).

Usage: LENET_DATA_DIR=... python benchmarks/baselines/train_mnist_fast.py [--seeds 3] [--train-images N]
Prints one JSON object: per run the seconds of each phase (data, model, steps, test) and the test accuracy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

MEAN, STD = 0.1307, 0.3081
BATCH_SIZE, TEST_BATCH_SIZE, EPOCHS, LEARNING_RATE, BETAS = 256, 2000, 1, 1e-2, (0.7, 0.9)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 24, 5, 1)
        self.conv2 = nn.Conv2d(24, 32, 3, 1)
        self.fc1 = nn.Linear(800, 256)
        self.fc2 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return F.log_softmax(self.fc2(x), dim=1)


def prepare(images: torch.Tensor, labels: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 28, 28) images as the recipe's normalized float (N, 1, 28, 28), shuffled once by SEED."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    normalized = (images[order].unsqueeze(1).float() / 255.0 - MEAN) / STD
    return normalized, labels[order]


def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
    batches_per_epoch = (len(images) - 1) // BATCH_SIZE + 1
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, betas=BETAS)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LEARNING_RATE,
                                                    total_steps=batches_per_epoch * EPOCHS, cycle_momentum=False)
    model.train()
    for i in range(batches_per_epoch * EPOCHS):
        i %= batches_per_epoch
        data, target = images[BATCH_SIZE * i:BATCH_SIZE * (i + 1)], labels[BATCH_SIZE * i:BATCH_SIZE * (i + 1)]
        optimizer.zero_grad()
        loss = F.nll_loss(model(data), target)
        loss.backward()
        optimizer.step()
        scheduler.step()


@torch.no_grad()
def test(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    correct = 0
    for i in range(len(images) // TEST_BATCH_SIZE):
        output = model(images[TEST_BATCH_SIZE * i:TEST_BATCH_SIZE * (i + 1)])
        correct += (output.argmax(1) == labels[TEST_BATCH_SIZE * i:TEST_BATCH_SIZE * (i + 1)]).sum().item()
    return correct / len(labels)


def one_run(train_images: torch.Tensor, train_labels: torch.Tensor, test_images: torch.Tensor,
            test_labels: torch.Tensor, seed: int) -> dict:
    """One seeded run of the recipe on uint8 MNIST tensors; the seconds of each phase and the test accuracy."""
    clock = time.perf_counter()
    seconds = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name], clock = round(now - clock, 3), now

    images, labels = prepare(train_images, train_labels, seed)
    test_x = (test_images.unsqueeze(1).float() / 255.0 - MEAN) / STD
    lap("data_s")
    torch.manual_seed(seed)
    model = Net()
    lap("model_s")
    train(model, images, labels)
    lap("train_s")
    accuracy = test(model, test_x, test_labels)
    lap("test_s")
    return {"seed": seed, "test_accuracy": accuracy, **seconds}


def main() -> None:
    from lenet import load_dataset
    from lenet.testing.machine import describe

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--train-images", type=int, default=60_000, help="fewer for a quick check (default all)")
    args = parser.parse_args()
    data = load_dataset("mnist").without_validation()  # the recipe trains on all 60,000
    images, labels = data.train_images[:args.train_images], data.train_labels[:args.train_images]
    runs = [one_run(images, labels, data.test_images, data.test_labels, seed) for seed in range(args.seeds)]
    print(json.dumps({"recipe": "tuomaso/train_mnist_fast 8_Final", "train_images": len(labels), "runs": runs,
                      "median_train_s": statistics.median(r["train_s"] for r in runs),
                      "mean_test_accuracy": statistics.mean(r["test_accuracy"] for r in runs), **describe()}))


if __name__ == "__main__":
    main()
