"""The data sets lenet knows (MNIST, Fashion-MNIST, any directory of IDX files): their class names,
files, checksums and where each is found; and the check that a model is given its own data.

Plain data, importable without torch: an exported model names its classes without loading torch.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from .errors import LenetError

DATASET_NAMES = ("mnist", "fashion-mnist", "idx")
# The four files every MNIST-style data set comes as (raw or .gz): LeCun's names, kept by Fashion-MNIST.
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = IDX_FILES
# Their sizes for 60,000 training and 10,000 test images (header + images or labels): a .gz of
# MNIST or Fashion-MNIST is unpacked no further than this.
STANDARD_BYTES = {TRAIN_IMAGES: 16 + 60_000 * 784, TRAIN_LABELS: 8 + 60_000,
                  TEST_IMAGES: 16 + 10_000 * 784, TEST_LABELS: 8 + 10_000}
# Optional beside a user's IDX files: one class name per line, in label order.
CLASSES_FILE = "classes.txt"
DIGITS = tuple("0123456789")
# The labels of Fashion-MNIST's README (Zalando Research, 2017), in label order.
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")


# Characters a class name may not hold, besides control characters (NUL, the escape sequences a terminal
# runs): line and paragraph separators and the bidirectional marks and overrides, which break or reorder
# the text around a name wherever it is printed.
_FORBIDDEN_IN_NAMES = frozenset("\u2028\u2029\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@dataclass(frozen=True)
class KnownDataset:
    """A published data set: files verified against SHA-256 checksums of their uncompressed content."""
    name: str
    classes: tuple[str, ...]
    sha256: dict[str, str]
    mirrors: tuple[str, ...]           # download URLs, each followed by a file name + ".gz"
    env_var: str                       # names a directory holding the four files
    system_dir: str | None = None      # where a system package installs them


KNOWN_DATASETS = {
    "mnist": KnownDataset(
        name="mnist", classes=DIGITS,
        # The files everyone has called MNIST since 1998.
        sha256={TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"},
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        env_var="LENET_DATA_DIR"),
    "fashion-mnist": KnownDataset(
        name="fashion-mnist", classes=FASHION_MNIST_CLASSES,
        # Of the uncompressed files: Debian's package re-compressed them, so its .gz bytes differ from
        # the upstream .gz files (whose MD5s the README lists) while the content is the same.
        sha256={TRAIN_IMAGES: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                TRAIN_LABELS: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                TEST_IMAGES: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                TEST_LABELS: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"},
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                 "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
        env_var="LENET_FASHION_MNIST_DIR", system_dir="/usr/share/datasets/fashion-mnist"),
}


def control_character(name: str) -> str | None:
    """The first character of the class name NAME that may not be printed as part of a name, as U+XXXX, or None."""
    for character in name:
        if unicodedata.category(character) == "Cc" or character in _FORBIDDEN_IN_NAMES:
            return f"U+{ord(character):04X}"
    return None


def check_dataset_name(name: str, what: str = "--dataset") -> str:
    """NAME, refused unless it is one of DATASET_NAMES."""
    if name not in DATASET_NAMES:
        raise LenetError(f"{what}: {name!r} is not one of {', '.join(DATASET_NAMES)}")
    return name


def default_classes(dataset: str, num_classes: int) -> tuple[str, ...]:
    """The class names of DATASET when nothing recorded them: a known set's own, else "0", "1", ..."""
    known = KNOWN_DATASETS.get(dataset)
    if known is not None and len(known.classes) == num_classes:
        return known.classes
    return tuple(str(c) for c in range(num_classes))


def reads_digits(dataset: str) -> bool:
    """Whether DATASET's pictures are handwritten digits: drawn on the page, read as numbers."""
    return dataset == "mnist"


def check_same_dataset(source: object, model_dataset: str, model_classes: int, data_dataset: str,
                       data_classes: int) -> None:
    """Refuse to measure a model of one data set on another's images (SOURCE names the model)."""
    if model_dataset != data_dataset:
        raise LenetError(f"{source}: a model of {model_dataset}, given {data_dataset} data; "
                         f"pass --dataset {model_dataset}")
    if model_classes != data_classes:
        raise LenetError(f"{source}: a model of {model_classes} classes, given data of {data_classes}")
