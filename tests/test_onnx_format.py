import subprocess
import sys

import numpy as np
import pytest

from lenet.inference import open_model
from lenet.onnx_format import expected_outputs, export_properties, info_from_properties, onnx_float_tensors


@pytest.mark.parametrize("module", ["model_info", "onnx_format", "inference", "export"])
def test_each_module_imports_alone_without_torch_or_onnx(module):
    # Alone, in a fresh interpreter: an import cycle fails here, and an exported file's metadata and
    # weights must be readable without the second or two that torch and onnx take to import.
    code = f"import sys, lenet.{module}; print(sorted({{'torch', 'onnx'}} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_float_weights_are_read_from_initializers_and_constant_nodes_in_every_encoding():
    from onnx import TensorProto, helper
    as_raw = helper.make_tensor("raw", TensorProto.FLOAT, [2], np.array([1.5, -2.0], "<f4").tobytes(), raw=True)
    as_floats = helper.make_tensor("floats", TensorProto.FLOAT, [2], [0.25, 4.0])
    as_doubles = helper.make_tensor("doubles", TensorProto.DOUBLE, [1], [3.0])
    # bfloat16 raw data is the top 16 bits of float32: 0x3FC0 is 1.5, 0xC000 is -2.0.
    as_bf16 = helper.make_tensor("bf16", TensorProto.BFLOAT16, [2], np.array([0x3FC0, 0xC000], "<u2").tobytes(),
                                 raw=True)
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, 784])  # integers are no weights
    constant = helper.make_node("Constant", [], ["c"], value=helper.make_tensor("const", TensorProto.FLOAT, [1], [7.0]))
    graph = helper.make_graph([constant], "g", [], [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1])],
                              initializer=[as_raw, as_floats, as_doubles, as_bf16, shape])
    payload = helper.make_model(graph).SerializeToString()
    read = {name: values.tolist() for name, values in onnx_float_tensors(payload)}
    assert read == {"raw": [1.5, -2.0], "floats": [0.25, 4.0], "doubles": [3.0], "bf16": [1.5, -2.0],
                    "shape": [], "const": [7.0]}


def test_the_written_properties_read_back_as_the_checkpoint_says(synthetic_model_dir):
    model = open_model(synthetic_model_dir, precision="fp32")
    properties = export_properties(model.checkpoint)
    assert all(key.startswith("lenet.") and isinstance(value, str) for key, value in properties.items())
    assert info_from_properties(properties, 10) == model.info
    assert info_from_properties({}, 10).dataset == "mnist"  # a file made elsewhere is a model of digits


def test_expected_outputs_of_a_known_set_a_users_set_and_a_file_that_says_nothing():
    assert expected_outputs({}, "mnist", 7) == 10
    assert expected_outputs({"lenet.classes": '["a", "b", "c"]'}, "idx", 7) == 3
    assert expected_outputs({"lenet.classes": "not json"}, "idx", 7) == 7
