"""Pictures of a training run and a network: curves, confusion, mistakes, filters, feature maps, diagram.

Every function writes one PNG (or several) and returns the paths. matplotlib draws headless
(Agg) and is imported only when a figure is drawn, so training never pays for it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from .calibration import expected_calibration_error, reliability_bins
from .errors import LenetError
from .evaluation import confusion_matrix
from .files import check_output_path
from .inference import LoadedModel, open_model
from .layers import AvgPool2d, Conv2d, MaxPool2d
from .models import eval_mode, model_device
from .pictures.inputs import read_inputs
from .tensorboard import (GRADIENT_PREFIX, LOG_SCALARS, VALIDATION_ACCURACY, labelled_grid, mistake_caption,
                          read_training_scalars)

FEATURE_MAP_LAYERS = (Conv2d, MaxPool2d, AvgPool2d)


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(figure, path: Path) -> Path:
    check_output_path(path, "png")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    _pyplot().close(figure)
    return path


def training_curves(scalars: dict[str, list[tuple[int, float]]], path: Path) -> Path:
    """Seed 003's five series (batch accuracy, cross-entropy, total loss, learning rate, mean |gradient|)
    plus validation accuracy, against the step."""
    plt = _pyplot()
    figure, axes = plt.subplots(2, 3, figsize=(13, 7))
    panels = [
        ("accuracy", [(LOG_SCALARS["batch_accuracy"], "training batch"), (VALIDATION_ACCURACY, "validation")], False),
        ("cross-entropy (mean)", [(LOG_SCALARS["cross_entropy"], "cross-entropy")], True),
        ("total loss", [(LOG_SCALARS["total_loss"], "cross-entropy + L2")], True),
        ("learning rate", [(LOG_SCALARS["learning_rate"], "learning rate")], True),
        ("mean |gradient| per layer", [(tag, tag[len(GRADIENT_PREFIX):]) for tag in sorted(scalars)
                                       if tag.startswith(GRADIENT_PREFIX)], True),
        ("images/s", [(LOG_SCALARS["images_per_s"], "training throughput")], False),
    ]
    for ax, (title, series, log_scale) in zip(axes.flat, panels):
        for tag, label in series:
            if scalars.get(tag):
                steps, values = zip(*scalars[tag])
                ax.plot(steps, values, label=label, marker="." if len(steps) < 30 else None)
        if log_scale and ax.has_data():
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(series) > 1 and ax.has_data():
            ax.legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def confusion_plot(confusion: list[list[int]], path: Path, title: str = "confusion matrix",
                   classes: tuple[str, ...] | None = None) -> Path:
    """Counts, true class down, predicted class across, each class named by CLASSES (by default its
    number); the diagonal in its own colour scale."""
    plt = _pyplot()
    counts = np.asarray(confusion)
    classes = classes or tuple(str(c) for c in range(len(counts)))
    named = max(map(len, classes)) > 1
    figure, ax = plt.subplots(figsize=(8, 7) if named else (7, 6))
    off_diagonal = counts * (1 - np.eye(len(counts), dtype=counts.dtype))
    ax.imshow(off_diagonal, cmap="Reds")
    darkest = max(int(off_diagonal.max()), 1)
    for (row, col), n in np.ndenumerate(counts):
        colour = "tab:blue" if row == col else ("white" if off_diagonal[row, col] > darkest / 2 else "black")
        ax.text(col, row, str(n), ha="center", va="center", fontsize=8, color=colour,
                fontweight="bold" if row == col else None)
    ax.set_xticks(range(len(counts)), classes, rotation=45 if named else 0, ha="right" if named else "center")
    ax.set_yticks(range(len(counts)), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(f"{title}: {counts.sum():,} images, accuracy {accuracy:.2%}")
    return _save(figure, path)


def reliability_diagram(probabilities: np.ndarray, labels: np.ndarray, path: Path, title: str) -> Path:
    """How often answers given with each confidence were right (15 bins), against the diagonal of a
    perfectly calibrated model; the bars' shade shows how many answers each bin holds."""
    bins = reliability_bins(probabilities, labels)
    ece = expected_calibration_error(probabilities, labels)
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5, 5))
    width = 1 / len(bins)
    total = max(sum(b.count for b in bins), 1)
    for b in bins:
        if b.count:
            axis.bar(b.low, b.accuracy, width=width, align="edge", edgecolor="black", linewidth=0.5,
                     color=plt.cm.Blues(0.3 + 0.7 * min(1.0, 20 * b.count / total)))
            axis.plot([b.low + width / 2], [b.confidence], "k.", markersize=4)
    axis.plot([0, 1], [0, 1], "r--", linewidth=1, label="perfectly calibrated")
    axis.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (calibrated top probability)", ylabel="accuracy",
             title=f"{title}\nECE {ece:.4f} over {total:,} answers")
    axis.legend(loc="upper left")
    return _save(figure, path)


def confident_mistakes(images: torch.Tensor, labels: torch.Tensor, probabilities: torch.Tensor,
                       path: Path, classes: tuple[str, ...], count: int = 36) -> Path | None:
    """The COUNT wrong predictions made with the highest probability, captioned 'true>predicted p'
    with the names in CLASSES; None when nothing is wrong."""
    confidence, predictions = probabilities.max(1)
    wrong = (predictions != labels).nonzero().flatten()
    if not len(wrong):
        return None
    worst = wrong[confidence[wrong].argsort(descending=True)][:count]
    captions = [mistake_caption(classes, int(labels[i]), int(predictions[i]), f"{confidence[i]:.2f}")
                for i in worst.tolist()]
    grid = labelled_grid(images[worst].numpy(), captions)
    check_output_path(path, "png")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    return path


def first_conv(model: nn.Module) -> tuple[str, Conv2d] | None:
    return next(((name, m) for name, m in model.named_modules() if isinstance(m, Conv2d)), None)


def filters_plot(model: nn.Module, path: Path) -> Path:
    """The first convolution layer's kernels, one tile per output channel (input channel 0)."""
    found = first_conv(model)
    if found is None:
        raise LenetError(f"{type(model).__name__} has no convolution layer, so no filters to draw")
    name, conv = found
    kernels = conv.weight.detach().float().cpu()[:, 0].numpy()
    plt = _pyplot()
    columns = min(8, len(kernels))
    rows = math.ceil(len(kernels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.2, rows * 1.3 + 0.4), squeeze=False)
    limit = float(np.abs(kernels).max()) or 1.0
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(kernels):
            ax.imshow(kernels[i], cmap="RdBu_r", vmin=-limit, vmax=limit)
    figure.suptitle(f"{name}: {len(kernels)} filters {conv.kernel_size}x{conv.kernel_size} "
                    f"(red positive, blue negative)")
    return _save(figure, path)


@torch.no_grad()
def feature_maps(model: nn.Module, image: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """(layer name, (C, H, W) output) of every convolution and pooling layer for one float (28, 28) image,
    as the layer returns it: before the ReLU that follows it (the networks pool before the ReLU)."""
    outputs: list[tuple[str, torch.Tensor]] = []
    hooks = [module.register_forward_hook(lambda m, i, out, name=name: outputs.append((name, out[0].cpu())))
             for name, module in model.named_modules() if isinstance(module, FEATURE_MAP_LAYERS)]
    try:
        with eval_mode(model):
            model(image.reshape(1, 1, 28, 28).to(model_device(model)))
    finally:
        for hook in hooks:
            hook.remove()
    return outputs


def feature_map_plots(model: nn.Module, image: torch.Tensor, out_dir: Path, progress=None) -> list[Path]:
    """One PNG per convolution/pooling layer: every channel of its output for IMAGE."""
    maps = feature_maps(model, image)
    if not maps:
        raise LenetError(f"{type(model).__name__} has no convolution or pooling layers, so no feature maps")
    plt = _pyplot()
    paths = []
    for index, (name, output) in enumerate(maps, 1):
        channels = len(output)
        columns = min(8, channels)
        rows = math.ceil(channels / columns)
        figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.2, rows * 1.25 + 0.5), squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < channels:
                ax.imshow(output[i].numpy(), cmap="viridis")
        figure.suptitle(f"{name}: output {channels}x{output.shape[1]}x{output.shape[2]}")
        paths.append(_save(figure, out_dir / f"feature-maps-{index:02d}-{name}.png"))
        if progress:
            progress(index, len(maps))
    return paths


def architecture_diagram(summary: dict, title: str, path: Path) -> Path:
    """A left-to-right chain of blocks (see summary.summarize): type, name, output shape, parameters."""
    plt = _pyplot()
    blocks = [{"name": "input", "type": "Input", "output_shape": summary["input_shape"],
               "params": 0}] + summary["layers"]
    colours = {"Input": "#dddddd", "Conv2d": "#8ecae6", "MaxPool2d": "#ffb703", "AvgPool2d": "#ffb703",
               "Linear": "#90be6d"}
    width = 1.7
    figure, ax = plt.subplots(figsize=(max(6.0, len(blocks) * width * 1.05), 2.6))
    for i, block in enumerate(blocks):
        x = i * width
        ax.add_patch(plt.Rectangle((x, 0), width * 0.8, 1.6, facecolor=colours.get(block["type"], "#cccccc"),
                                   edgecolor="black"))
        shape = "x".join(map(str, block["output_shape"]))
        ax.text(x + width * 0.4, 1.2, block["name"], ha="center", fontsize=9, fontweight="bold")
        ax.text(x + width * 0.4, 0.85, block["type"], ha="center", fontsize=8)
        ax.text(x + width * 0.4, 0.5, shape, ha="center", fontsize=8)
        ax.text(x + width * 0.4, 0.15, f"{block['params']:,} params", ha="center", fontsize=7)
        if i:
            ax.annotate("", xy=(x, 0.8), xytext=(x - width * 0.2, 0.8), arrowprops={"arrowstyle": "->"})
    ax.set_xlim(-0.1, len(blocks) * width)
    ax.set_ylim(-0.1, 1.9)
    ax.axis("off")
    ax.set_title(f"{title}: {summary['total_params']:,} parameters")
    return _save(figure, path)


def plot_model_dir(model: LoadedModel | str | Path, data, out_dir: str | Path | None = None,
                   image: str | Path | None = None, device: str = "cpu", progress=None) -> tuple[list[Path], list[str]]:
    """All pictures of a model directory's checkpoint: (written PNG paths, notes on what was skipped).

    MODEL comes from open_model, or is a source to open on DEVICE (its newest checkpoint). DATA is the
    model's data set (test split for the confusion matrix and mistakes); IMAGE, a picture or .npy/IDX
    file whose first image's feature maps are drawn (a picture normalized for the model's set).
    """
    loaded = model if isinstance(model, LoadedModel) else open_model(model, device)
    network, info = loaded.network("lenet plot"), loaded.info
    model_dir = loaded.source
    out_dir = Path(out_dir) if out_dir else model_dir / "plots"
    loaded.check_data(data)
    inputs = read_inputs(image, info.dataset)[0][0] if image else None  # fail on a bad image before drawing anything
    paths, notes = [], []
    try:
        paths.append(training_curves(read_training_scalars(model_dir), out_dir / "training-curves.png"))
    except LenetError as error:
        notes.append(str(error))
    images, labels = data.split("test")
    probabilities = torch.from_numpy(loaded.probabilities(images))
    paths.append(reliability_diagram(probabilities.numpy(), labels.cpu().numpy(), out_dir / "reliability.png",
                                     f"{info.recipe} step {info.step}, test"))
    confusion = confusion_matrix(labels, probabilities.argmax(1), loaded.num_classes).tolist()
    paths.append(confusion_plot(confusion, out_dir / "confusion.png", f"{info.recipe} step {info.step}, test",
                                info.classes))
    mistakes = confident_mistakes(images, labels, probabilities, out_dir / "confident-mistakes.png", info.classes)
    if mistakes:
        paths.append(mistakes)
    else:
        notes.append("no test image is misclassified: no mistakes to draw")
    if first_conv(network) is None:
        notes.append(f"{info.model} has no convolution layers: no filters or feature maps to draw")
        return paths, notes
    paths.append(filters_plot(network, out_dir / "filters.png"))
    if inputs is not None:
        paths.extend(feature_map_plots(network, torch.from_numpy(inputs), out_dir, progress))
    return paths, notes
