"""The tutorial CNN's second convolution (5x5, 32 -> 64 channels on 14x14 maps) in each CPU kernel
lenet can reach, in GFLOP/s; prints one JSON object.

It is about two thirds of a training step and over half of inference, so its speed bounds both.
Kernels: PyTorch's (oneDNN) in NCHW and in channels-last layout, onnxruntime's (the runtime of
`lenet export --format onnx`), and PyTorch's 2048x2048 matrix product as a reference. Each figure
is the best of --repeats timed calls after one warm-up call.

Usage: python benchmarks/speed/conv_kernels.py [--batch 1000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import onnxruntime
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

from lenet.testing.machine import describe

CHANNELS_IN, CHANNELS_OUT, SIZE, KERNEL = 32, 64, 14, 5


def best_seconds(call, repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def onnx_convolution(weight: np.ndarray, batch: int) -> onnxruntime.InferenceSession:
    """A one-node ONNX graph: the same SAME-padded convolution with WEIGHT baked in."""
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[KERNEL // 2] * 4)], "conv2",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, CHANNELS_IN, SIZE, SIZE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, CHANNELS_OUT, SIZE, SIZE])],
        initializer=[numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    x = torch.rand(args.batch, CHANNELS_IN, SIZE, SIZE)
    weight = torch.randn(CHANNELS_OUT, CHANNELS_IN, KERNEL, KERNEL) * 0.1
    conv_flop = 2 * args.batch * SIZE * SIZE * CHANNELS_OUT * CHANNELS_IN * KERNEL * KERNEL
    x_nhwc = x.contiguous(memory_format=torch.channels_last)
    weight_nhwc = weight.contiguous(memory_format=torch.channels_last)
    session, x_numpy = onnx_convolution(weight.numpy(), args.batch), x.numpy()
    reference = F.conv2d(x, weight, padding=KERNEL // 2)
    onnx_output = session.run(None, {"x": x_numpy})[0]
    assert np.allclose(onnx_output, reference.numpy(), atol=1e-3), "onnxruntime's convolution disagrees"
    seconds = {
        "torch_nchw": best_seconds(lambda: F.conv2d(x, weight, padding=KERNEL // 2), args.repeats),
        "torch_channels_last": best_seconds(lambda: F.conv2d(x_nhwc, weight_nhwc, padding=KERNEL // 2),
                                            args.repeats),
        "onnxruntime": best_seconds(lambda: session.run(None, {"x": x_numpy}), args.repeats),
    }
    gflops = {name: round(conv_flop / s / 1e9, 1) for name, s in seconds.items()}
    a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
    gflops["torch_mm_2048"] = round(2 * 2048 ** 3 / best_seconds(lambda: torch.mm(a, b), args.repeats) / 1e9, 1)
    print(json.dumps({"layer": f"conv {KERNEL}x{KERNEL}, {CHANNELS_IN}->{CHANNELS_OUT}, {SIZE}x{SIZE}",
                      "batch": args.batch, "gflop_per_s": gflops, "onnxruntime": onnxruntime.__version__,
                      **describe("cpu")}))


if __name__ == "__main__":
    main()
