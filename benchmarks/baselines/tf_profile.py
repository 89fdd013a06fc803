"""Baseline: where TensorFlow's time goes in the seed-000 network, per operation type; prints one JSON object.

The seed's own program style (a TF1 graph in tf.compat.v1: placeholders, tf.nn layers, SGD with
staircase decay, L2 on the dense weights, the moving average), run in a Session with full tracing:
TensorFlow's step statistics give each executed operation's time. --steps traced training steps
(after --warmup untraced ones) and as many inference passes over --infer-batch test images.
Operation times are summed per type; TensorFlow runs independent operations concurrently, so the
sum can exceed the step's wall time, which is reported beside it.

Usage: python benchmarks/baselines/tf_profile.py [--steps 30] [--infer-batch 100] [--data-dir DIR]
Needs TensorFlow (make bench-setup); lenet does not depend on it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

from tf_tutorial_cnn import find, read_idx  # noqa: E402

tf1 = tf.compat.v1


def network(images, keep_prob):
    """Seed 000's mnist_inference: two 5x5 SAME convolutions (32, 64), 2x2 max-pools, fc 512, fc 10."""
    def weight(shape):
        return tf.Variable(tf1.truncated_normal(shape, stddev=0.1))

    conv1_w, conv2_w = weight([5, 5, 1, 32]), weight([5, 5, 32, 64])
    fc1_w, fc2_w = weight([7 * 7 * 64, 512]), weight([512, 10])
    x = tf.nn.relu(tf.nn.conv2d(images, conv1_w, 1, "SAME") + tf.Variable(tf.zeros([32])))
    x = tf.nn.max_pool2d(x, 2, 2, "SAME")
    x = tf.nn.relu(tf.nn.conv2d(x, conv2_w, 1, "SAME") + tf.Variable(tf.zeros([64])))
    x = tf.nn.max_pool2d(x, 2, 2, "SAME")
    x = tf.reshape(x, [-1, 7 * 7 * 64])
    x = tf.nn.dropout(tf.nn.relu(tf.matmul(x, fc1_w) + tf.Variable(tf.fill([512], 0.1))), rate=1 - keep_prob)
    return tf.matmul(x, fc2_w) + tf.Variable(tf.fill([10], 0.1)), [fc1_w, fc2_w]


def per_type(run_metadata) -> dict[str, float]:
    """Microseconds per operation type in one traced run."""
    times: dict[str, float] = collections.Counter()
    for device in run_metadata.step_stats.dev_stats:
        for node in device.node_stats:
            op = node.timeline_label.split(" = ")[1].split("(")[0] if " = " in node.timeline_label else node.node_name
            times[op] += node.op_end_rel_micros - node.op_start_rel_micros
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--infer-batch", type=int, default=100)
    parser.add_argument("--data-dir", default=os.environ.get("LENET_DATA_DIR"))
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("no MNIST directory: pass --data-dir or set LENET_DATA_DIR")
    data_dir = Path(args.data_dir)
    x_train = (read_idx(find(data_dir, "train-images-idx3-ubyte"))[:55_000].astype(np.float32) / 255.0)[..., None]
    y_train = read_idx(find(data_dir, "train-labels-idx1-ubyte"))[:55_000].astype(np.int64)
    x_test = (read_idx(find(data_dir, "t10k-images-idx3-ubyte")).astype(np.float32) / 255.0)[..., None]

    tf1.disable_eager_execution()
    images, labels = tf1.placeholder(tf.float32, [None, 28, 28, 1]), tf1.placeholder(tf.int64, [None])
    keep_prob = tf1.placeholder_with_default(1.0, [])
    logits, dense = network(images, keep_prob)
    step = tf.Variable(0, trainable=False, dtype=tf.int64)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)) \
        + 1e-4 * tf.add_n([tf.nn.l2_loss(w) for w in dense])
    rate = tf1.train.exponential_decay(0.01, step, 550, 0.99, staircase=True)
    minimize = tf1.train.GradientDescentOptimizer(rate).minimize(loss, global_step=step)
    average = tf1.train.ExponentialMovingAverage(0.99, step)
    with tf.control_dependencies([minimize]):
        train_op = average.apply(tf1.trainable_variables())
    trace = tf1.RunOptions(trace_level=tf1.RunOptions.FULL_TRACE)
    order = np.random.default_rng(0).permutation(55_000)
    with tf1.Session() as session:
        session.run(tf1.global_variables_initializer())

        def batch(i):
            indices = order[(i * 100) % 55_000:][:100]
            return {images: x_train[indices], labels: y_train[indices], keep_prob: 0.5}

        for i in range(args.warmup):
            session.run(train_op, batch(i))
        train_ops, train_wall = collections.Counter(), 0.0
        for i in range(args.steps):
            metadata = tf1.RunMetadata()
            started = time.perf_counter()
            session.run(train_op, batch(args.warmup + i), options=trace, run_metadata=metadata)
            train_wall += time.perf_counter() - started
            train_ops.update(per_type(metadata))
        untraced = time.perf_counter()
        for i in range(args.steps):
            session.run(train_op, batch(i))
        untraced_step_s = (time.perf_counter() - untraced) / args.steps
        infer_ops, infer_wall = collections.Counter(), 0.0
        session.run(logits, {images: x_test[:args.infer_batch]})
        for i in range(args.steps):
            metadata = tf1.RunMetadata()
            chunk = x_test[(i * args.infer_batch) % 10_000:][:args.infer_batch]
            started = time.perf_counter()
            session.run(logits, {images: chunk}, options=trace, run_metadata=metadata)
            infer_wall += time.perf_counter() - started
            infer_ops.update(per_type(metadata))

    def table(ops, runs):
        return {op: round(us / runs / 1000, 3) for op, us in sorted(ops.items(), key=lambda kv: -kv[1])}

    print(json.dumps({"implementation": "tensorflow-v1-graph", "tensorflow": tf.__version__,
                      "train_step_ms_traced": round(train_wall / args.steps * 1000, 2),
                      "train_step_ms_untraced": round(untraced_step_s * 1000, 2),
                      "train_ms_per_op_type": table(train_ops, args.steps),
                      "infer_batch": args.infer_batch,
                      "infer_pass_ms_traced": round(infer_wall / args.steps * 1000, 2),
                      "infer_ms_per_op_type": table(infer_ops, args.steps)}))


if __name__ == "__main__":
    main()
