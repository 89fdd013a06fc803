import hashlib
import os

import numpy as np
import pytest
import torch

from conftest import write_idx_set
from lenet.data import LenetError, load_dataset, locate_dataset
from lenet.datasets import (FASHION_MNIST_CLASSES, IDX_FILES, KNOWN_DATASETS, TEST_LABELS, TRAIN_IMAGES,
                            check_same_dataset)
from lenet.idx import gunzip_if_needed, write_idx


def test_fashion_mnist_is_verified_split_like_mnist_and_balanced(fashion):
    assert fashion.name == "fashion-mnist" and fashion.classes == FASHION_MNIST_CLASSES
    assert fashion.train_images.shape == (55_000, 28, 28) and fashion.val_images.shape == (5_000, 28, 28)
    assert fashion.test_images.shape == (10_000, 28, 28) and fashion.test_images.dtype == torch.uint8
    # Fashion-MNIST's paper: 7,000 images of each of the 10 classes, 6,000 training and 1,000 test.
    train_counts = torch.bincount(torch.cat([fashion.train_labels, fashion.val_labels]), minlength=10)
    assert train_counts.tolist() == [6000] * 10
    assert torch.bincount(fashion.test_labels).tolist() == [1000] * 10
    assert fashion.classes[3] == "Dress" and fashion.classes[9] == "Ankle boot"  # the README's labels


def test_the_recorded_checksums_are_of_the_uncompressed_content(fashion):
    directory = KNOWN_DATASETS["fashion-mnist"].system_dir
    if os.environ.get(KNOWN_DATASETS["fashion-mnist"].env_var) or not os.path.isdir(directory):
        pytest.skip("checks Debian's re-compressed files")
    for name, sha256 in KNOWN_DATASETS["fashion-mnist"].sha256.items():
        packed = open(os.path.join(directory, f"{name}.gz"), "rb").read()
        assert hashlib.sha256(packed).hexdigest() != sha256  # Debian's .gz bytes are not what is recorded ...
        assert hashlib.sha256(gunzip_if_needed(packed, name)).hexdigest() == sha256  # ... their content is


def test_each_known_set_has_its_own_directory_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("LENET_DATA_DIR", str(tmp_path / "mnist"))  # MNIST's: no concern of Fashion-MNIST's
    monkeypatch.setenv("LENET_FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(LenetError, match=f"^{tmp_path} \\(from LENET_FASHION_MNIST_DIR\\) lacks train-images"):
        locate_dataset("fashion-mnist")
    with pytest.raises(LenetError, match="from LENET_DATA_DIR"):
        locate_dataset("mnist")


def test_another_sets_files_fail_the_checksum(tmp_path, monkeypatch):
    write_idx_set(tmp_path)
    monkeypatch.delenv("LENET_FASHION_MNIST_DIR", raising=False)
    with pytest.raises(LenetError, match=f"{TRAIN_IMAGES}: SHA-256 checksum mismatch"):
        load_dataset("fashion-mnist", tmp_path)


def test_a_directory_of_idx_files_is_a_data_set_with_its_own_classes(tmp_path):
    write_idx_set(tmp_path, num_classes=4, classes=["cat", "dog", "bird", "fish"])
    data = load_dataset("idx", tmp_path)
    assert data.name == "idx" and data.classes == ("cat", "dog", "bird", "fish")
    # One in twelve training images held out, as the TensorFlow reader's 5,000 of 60,000.
    assert len(data.train_images) == 440 and len(data.val_images) == 40 and len(data.test_images) == 120
    assert set(data.test_labels.tolist()) == {0, 1, 2, 3}
    # The checksums are recorded, not verified: those of the files as written.
    assert data.sha256 == {name: hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() for name in IDX_FILES}
    (tmp_path / "classes.txt").unlink()
    assert load_dataset("idx", tmp_path).classes == ("0", "1", "2", "3")


def _rewrite(directory, name, array):
    write_idx(directory / name, array)


@pytest.mark.parametrize("change, message", [
    (lambda d: _rewrite(d, TRAIN_IMAGES, np.zeros((480, 32, 32), np.uint8)),
     f"{TRAIN_IMAGES}: expected uint8 images of 28x28, got uint8 of dimensions 480x32x32"),
    (lambda d: _rewrite(d, TEST_LABELS, np.full(120, 7, np.uint8)),
     f"{TEST_LABELS}: label 7 is out of range: the training labels are 0..2"),
    (lambda d: _rewrite(d, TEST_LABELS, np.zeros(119, np.uint8)),
     f"{TEST_LABELS}: 119 labels for the 120 images"),
    (lambda d: _rewrite(d, IDX_FILES[1], np.zeros(480, np.uint8)),
     "every label is 0; a classifier needs at least two classes"),
    (lambda d: (d / "classes.txt").write_text("a\nb\n"),
     "classes.txt: 2 class names for the 3 classes of the labels"),
    (lambda d: (d / IDX_FILES[2]).unlink(), "lacks t10k-images-idx3-ubyte"),
])
def test_a_bad_idx_set_is_a_one_line_error_naming_the_file(tmp_path, change, message):
    write_idx_set(tmp_path)
    change(tmp_path)
    with pytest.raises(LenetError) as error:
        load_dataset("idx", tmp_path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_an_idx_set_needs_its_directory():
    with pytest.raises(LenetError, match="--dataset idx needs --data-dir DIR"):
        load_dataset("idx")
    with pytest.raises(LenetError, match="--dataset: 'emnist' is not one of mnist, fashion-mnist, idx"):
        load_dataset("emnist")


def test_a_model_of_one_set_refuses_anothers_data():
    with pytest.raises(LenetError, match="^runs/x: a model of fashion-mnist, given mnist data; pass --dataset fashion-mnist$"):
        check_same_dataset("runs/x", "fashion-mnist", 10, "mnist", 10)
    with pytest.raises(LenetError, match="a model of 3 classes, given data of 4"):
        check_same_dataset("runs/x", "idx", 3, "idx", 4)
    check_same_dataset("runs/x", "idx", 3, "idx", 3)


def _stray_label(directory, label=255, image=17):
    """The training labels of write_idx_set's set, one of them (IMAGE's) replaced by LABEL."""
    labels = np.arange(480, dtype=np.uint8) % 3
    labels[image] = label
    _rewrite(directory, IDX_FILES[1], labels)


def test_one_stray_label_does_not_make_a_network_of_256_classes(tmp_path):
    write_idx_set(tmp_path)
    _stray_label(tmp_path)
    with pytest.raises(LenetError) as error:
        load_dataset("idx", tmp_path)
    assert str(error.value) == (
        f"{tmp_path / IDX_FILES[1]}: label 255 makes 256 classes, but 252 of them (label 3, ...) have no training "
        f"image; a stray label? (labels are 0..K-1, each used, or named in classes.txt)")


def test_a_label_beyond_the_names_in_classes_txt_is_refused_saying_which_image_has_it(tmp_path):
    write_idx_set(tmp_path, classes=["cat", "dog", "bird"])
    _stray_label(tmp_path, 7, image=40)
    with pytest.raises(LenetError) as error:
        load_dataset("idx", tmp_path)
    assert str(error.value) == (
        f"{tmp_path / 'classes.txt'}: 3 class names for the 8 classes of the labels (one name per line, in label "
        f"order); {tmp_path / IDX_FILES[1]} has label 7 (image 40)")


@pytest.mark.parametrize("name, character", [("d\x00g", "U+0000"), ("\x1b[31mdog", "U+001B"), ("do\x7fg", "U+007F"),
                                             ("dog\u202egod", "U+202E"), ("d\x0cog", "U+000C"),
                                             ("d\u2028og", "U+2028")])
def test_class_names_with_control_characters_are_refused_naming_the_line(tmp_path, name, character):
    write_idx_set(tmp_path)
    (tmp_path / "classes.txt").write_bytes(f"cat\n\n{name}\nbird\n".encode())  # the name is on line 3
    with pytest.raises(LenetError) as error:
        load_dataset("idx", tmp_path)
    assert str(error.value) == f"{tmp_path / 'classes.txt'}: line 3: the class name holds the control character " \
                               f"{character}"
    (tmp_path / "classes.txt").write_bytes(b"cat\r\n  dog \r\nbird\r\n")  # Windows line ends, spaces around
    assert load_dataset("idx", tmp_path).classes == ("cat", "dog", "bird")
