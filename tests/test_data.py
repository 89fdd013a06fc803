import gzip
import hashlib
import io
from dataclasses import replace

import numpy as np
import pytest
import torch

from lenet import data
from lenet.data import BatchOrder, LenetError, locate_dataset
from lenet.datasets import IDX_FILES, KNOWN_DATASETS, TRAIN_IMAGES
from lenet.idx import is_idx, parse_idx, parse_npy, read_idx, write_idx


def test_idx_round_trip_raw_and_gzip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a-idx3-ubyte", array)
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte"), array)
    raw = (tmp_path / "a-idx3-ubyte").read_bytes()
    assert raw[:4] == bytes([0, 0, 8, 3])  # magic: two zero bytes, uint8 code, 3 dimensions
    (tmp_path / "a.gz").write_bytes(gzip.compress(raw))
    assert np.array_equal(read_idx(tmp_path / "a.gz"), array)
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("payload, message", [
    (b"", "bad magic"),
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "bad magic"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "bad magic"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x02\x00\x00\x00\x01", "header truncated"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x03\x05\x06", "does not match dimensions"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x01\x05\x06", "does not match dimensions"),
])
def test_idx_validation_errors_name_the_problem(payload, message):
    with pytest.raises(LenetError, match=message):
        parse_idx(payload, "x.idx")


def test_idx_checksum_mismatch_names_file(tmp_path):
    write_idx(tmp_path / "f", np.zeros(3, np.uint8))
    with pytest.raises(LenetError, match=r"f: SHA-256 checksum mismatch"):
        read_idx(tmp_path / "f", expected_sha256="0" * 64)


def test_corrupt_gzip_is_a_clean_error(tmp_path):
    (tmp_path / "f.gz").write_bytes(b"\x1f\x8b" + b"garbage")
    with pytest.raises(LenetError, match="corrupt gzip"):
        read_idx(tmp_path / "f.gz")


def test_missing_data_dir_lists_the_options(tmp_path, monkeypatch):
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    with pytest.raises(LenetError) as error:
        locate_dataset("mnist", tmp_path)
    text = str(error.value)
    assert "--data-dir" in text and data.DATA_DIR_ENV in text and "download" in text
    assert "train-images-idx3-ubyte" in text


def test_env_variable_is_used_when_no_option(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(LenetError, match=data.DATA_DIR_ENV):
        locate_dataset()


def _fake_mirror(monkeypatch, tmp_path, good: bool):
    """Point the downloader at fake files: one IDX payload whose checksum we control."""
    payload = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02\x07\x09")
    checksum = hashlib.sha256(gzip.decompress(payload)).hexdigest()
    known = replace(KNOWN_DATASETS["mnist"], sha256={name: checksum if good else "0" * 64 for name in IDX_FILES})
    monkeypatch.setitem(KNOWN_DATASETS, "mnist", known)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(data.time, "sleep", lambda s: None)
    calls = []

    def urlopen(url, timeout):
        calls.append(url)
        return io.BytesIO(payload)
    monkeypatch.setattr(data.urllib.request, "urlopen", urlopen)
    return calls


def test_download_verifies_checksum_and_lands_in_cache(tmp_path, monkeypatch):
    calls = _fake_mirror(monkeypatch, tmp_path, good=True)
    paths = locate_dataset()
    assert paths[TRAIN_IMAGES] == tmp_path / "lenet" / "mnist" / f"{TRAIN_IMAGES}.gz"
    assert list(read_idx(paths[TRAIN_IMAGES])) == [7, 9]
    assert len(calls) == 4 and calls[0] == f"{KNOWN_DATASETS['mnist'].mirrors[0]}{TRAIN_IMAGES}.gz"
    locate_dataset()  # cached: no second download
    assert len(calls) == 4


def test_download_with_bad_checksum_retries_then_fails_and_leaves_nothing(tmp_path, monkeypatch):
    calls = _fake_mirror(monkeypatch, tmp_path, good=False)
    with pytest.raises(LenetError, match=f"could not download mnist file {TRAIN_IMAGES}.*--data-dir"):
        locate_dataset()
    assert len(calls) == 3 * len(KNOWN_DATASETS["mnist"].mirrors)
    cache = tmp_path / "lenet" / "mnist"
    assert not cache.exists() or not any(cache.iterdir())  # no partial or unverified file


def test_batch_order_is_a_seeded_permutation_per_epoch():
    order = BatchOrder(num_examples=10, batch_size=3, seed=7)
    epoch0 = torch.cat([order.indices(s) for s in range(3)])
    assert len(set(epoch0.tolist())) == 9  # 3 full batches, no repeats, the remainder skipped
    again = BatchOrder(10, 3, seed=7)
    assert torch.equal(again.indices(4), order.indices(4))  # any step is reproducible alone
    assert not torch.equal(BatchOrder(10, 3, seed=8).indices(0), BatchOrder(10, 3, seed=7).indices(0))
    with pytest.raises(LenetError, match="batch_size"):
        BatchOrder(10, 11, seed=0)


def test_without_validation_moves_the_validation_images_into_training(synthetic):
    everything = synthetic.without_validation()
    assert torch.equal(everything.train_images, torch.cat([synthetic.train_images, synthetic.val_images]))
    assert torch.equal(everything.train_labels, torch.cat([synthetic.train_labels, synthetic.val_labels]))
    assert len(everything.val_images) == len(everything.val_labels) == 0
    assert everything.test_images is synthetic.test_images and len(synthetic.val_labels) == 150


def test_real_mnist_splits_match_the_tensorflow_reader(mnist):
    assert mnist.train_images.shape == (55_000, 28, 28) and mnist.train_images.dtype == torch.uint8
    assert mnist.val_images.shape == (5_000, 28, 28)
    assert mnist.test_images.shape == (10_000, 28, 28)
    # Class counts published with the data set (SEEDS.md).
    train_counts = torch.bincount(torch.cat([mnist.train_labels, mnist.val_labels]), minlength=10)
    assert train_counts.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(mnist.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_a_failed_atomic_write_names_the_target_and_leaves_nothing(tmp_path, monkeypatch):
    import tempfile

    from lenet.files import atomic_write_bytes

    def denied(*args, **kwargs):  # as for a directory without write permission (root ignores modes)
        raise PermissionError(13, "Permission denied", str(tmp_path / ".model.onnx.x1y2.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(LenetError, match=r"^cannot write .*/model\.onnx: Permission denied$"):
        atomic_write_bytes(tmp_path / "model.onnx", b"payload")
    monkeypatch.undo()
    (tmp_path / "a-file").write_text("")
    with pytest.raises(LenetError, match=r"a-file/model\.onnx: .*a-file: File exists"):
        atomic_write_bytes(tmp_path / "a-file" / "model.onnx", b"payload")
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


def test_gzip_is_unpacked_no_further_than_its_limit():
    import gzip
    from lenet.idx import gunzip_if_needed
    bomb = gzip.compress(b"\0" * 100_000)
    with pytest.raises(LenetError, match="unpacks to more than 1,000 bytes"):
        gunzip_if_needed(bomb, "bomb.gz", max_bytes=1000)
    assert gunzip_if_needed(gzip.compress(b"ab") + gzip.compress(b"cd"), "two members") == b"abcd"
    with pytest.raises(LenetError, match="corrupt gzip data"):
        gunzip_if_needed(bomb[:40], "cut.gz")


def test_idx_dimensions_whose_product_wraps_in_int64_are_refused():
    # Four dimensions of 65,536: 2**64 elements, 0 in int64 arithmetic.
    raw = bytes([0, 0, 0x08, 4]) + (65_536).to_bytes(4, "big") * 4
    with pytest.raises(LenetError, match="does not match dimensions"):
        parse_idx(raw, "huge")


@pytest.mark.parametrize("payload, message", [
    (bytes([0, 0, 8, 4]) + (65536).to_bytes(4, "big") * 4, "does not match dimensions 65536x65536x65536x65536"),
    (bytes([0, 0, 8, 255]) + bytes(1020), "declares 255 dimensions"),
])
def test_idx_headers_whose_sizes_overflow_are_refused_before_allocating(payload, message):
    with pytest.raises(LenetError, match=message):
        parse_idx(payload, "x")


def test_idx_is_told_by_its_magic_number_and_length_not_two_zero_bytes():
    assert is_idx(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9]))
    assert not is_idx(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 9]))   # one byte short
    assert not is_idx(bytes([0, 0, 1, 0, 1, 0]) + bytes(100))  # an ICO header
    assert not is_idx(bytes([0, 0, 0x80, 0x3F]) + bytes(100))  # SPIDER's float 1.0


def test_npy_headers_claiming_more_than_the_file_holds_are_refused_before_allocating():
    import io
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((1, 28, 28), np.uint8))
    raw = buffer.getvalue().replace(b"(1, 28, 28)", b"(1000000000, 28, 28)")
    with pytest.raises(LenetError, match="does not match its shape"):
        parse_npy(raw, "x.npy")
    assert parse_npy(buffer.getvalue(), "x.npy").shape == (1, 28, 28)


def test_a_data_dir_that_does_not_exist_is_called_so(tmp_path):
    with pytest.raises(LenetError, match=f"^{tmp_path / 'nope'} \\(from --data-dir\\): no such directory$"):
        locate_dataset("mnist", tmp_path / "nope")
