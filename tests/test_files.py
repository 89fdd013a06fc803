import os
from pathlib import Path

import numpy as np
import pytest

from lenet.errors import LenetError
from lenet.files import check_finite_weights, read_file_bytes, read_json


def test_regular_files_are_read_through_symlinks(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert read_file_bytes(tmp_path / "link") == b"abc"


@pytest.mark.parametrize("kind", ["fifo", "device", "link-to-device", "directory"])
def test_files_that_never_end_or_block_are_refused_before_reading(tmp_path, kind):
    path = Path("/dev/zero") if kind == "device" else tmp_path / "x.json"
    if kind == "fifo":
        os.mkfifo(path)  # opening it to read would block until a writer came
    elif kind == "directory":
        path.mkdir()
    elif kind == "link-to-device":
        path.symlink_to("/dev/zero")  # reading it would never end
    with pytest.raises(LenetError, match=f"^{path}: not a regular file"):
        read_file_bytes(path)
    with pytest.raises(LenetError, match="not a regular file"):
        read_json(path)


def test_files_over_the_limit_are_refused_before_reading(tmp_path):
    (tmp_path / "big").write_bytes(bytes(101))
    with pytest.raises(LenetError, match="101 bytes, over the limit of 100"):
        read_file_bytes(tmp_path / "big", max_bytes=100)


def test_non_finite_weights_are_refused_naming_the_tensor():
    check_finite_weights([("w", np.ones(3))], "model")
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(LenetError, match="^model: b holds NaN or infinite values$"):
            check_finite_weights([("w", np.ones(3)), ("b", np.array([0.0, bad]))], "model")
