"""Baseline: the seed-000 tutorial CNN in TensorFlow 2, as graph-mode tf.function or Keras fit.

--mode graph: a @tf.function training step (the seed's program without tf.compat.v1):
  SGD with exponential decay (0.01, x0.99 every 550 steps, staircase), L2 1e-4 on the dense
  weights as rate * sum(w^2) / 2, the moving average of tf.train.ExponentialMovingAverage(0.99,
  num_updates=step) written out (that class does not take Keras 3 variables).
--mode keras: the same network through model.compile/fit (Keras' l2 is rate * sum(w^2), so 5e-5;
  the optimizer's own EMA, which has no warm-up: after few steps its average still leans on
  the initial weights, so its accuracy lags there).
Both start from the seed's initialization (truncated normal, stddev 0.1; dense biases 0.1).
Data live in memory as one array; batches are sliced from it. Prints one JSON object.

Usage: python benchmarks/baselines/tf_tutorial_cnn.py --mode graph|keras --steps 300 [--data-dir DIR]
Needs TensorFlow (a separate environment; lenet does not depend on it).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402


def read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def find(data_dir: Path, stem: str) -> Path:
    return next(p for p in (data_dir / stem, data_dir / f"{stem}.gz") if p.exists())


def build_model(l2: float) -> tf.keras.Model:
    regularizer = tf.keras.regularizers.l2(l2)
    # The seed's tf.truncated_normal(stddev=0.1) weights; biases 0 (convolutions) and 0.1 (dense).
    def weights() -> tf.keras.initializers.Initializer:
        return tf.keras.initializers.TruncatedNormal(stddev=0.1)

    def dense(units: int, **options) -> tf.keras.layers.Dense:
        return tf.keras.layers.Dense(units, kernel_initializer=weights(), kernel_regularizer=regularizer,
                                     bias_initializer=tf.keras.initializers.Constant(0.1), **options)

    return tf.keras.Sequential([
        tf.keras.Input((28, 28, 1)),
        tf.keras.layers.Conv2D(32, 5, padding="same", activation="relu", kernel_initializer=weights()),
        tf.keras.layers.MaxPool2D(2, padding="same"),
        tf.keras.layers.Conv2D(64, 5, padding="same", activation="relu", kernel_initializer=weights()),
        tf.keras.layers.MaxPool2D(2, padding="same"),
        tf.keras.layers.Flatten(),
        dense(512, activation="relu"),
        tf.keras.layers.Dropout(0.5),
        dense(10),
    ])


WARMUP_STEPS = 20  # steps run before the clock starts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["graph", "keras"], default="graph")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--data-dir", default=os.environ.get("LENET_DATA_DIR"))
    parser.add_argument("--infer-batch", type=int, default=1000)
    args = parser.parse_args()
    if args.steps <= WARMUP_STEPS:
        parser.error(f"--steps must be more than {WARMUP_STEPS}, the untimed warm-up")
    if not args.data_dir:
        parser.error("no MNIST directory: pass --data-dir or set LENET_DATA_DIR")
    tf.random.set_seed(0)
    data_dir = Path(args.data_dir)
    x = (read_idx(find(data_dir, "train-images-idx3-ubyte"))[:55_000].astype(np.float32) / 255.0)[..., None]
    y = read_idx(find(data_dir, "train-labels-idx1-ubyte"))[:55_000].astype(np.int64)
    x_test = (read_idx(find(data_dir, "t10k-images-idx3-ubyte")).astype(np.float32) / 255.0)[..., None]
    y_test = read_idx(find(data_dir, "t10k-labels-idx1-ubyte")).astype(np.int64)
    schedule = tf.keras.optimizers.schedules.ExponentialDecay(0.01, 550, 0.99, staircase=True)

    if args.mode == "graph":
        model = build_model(0.0)
        optimizer = tf.keras.optimizers.SGD(schedule)
        dense = [model.layers[-3].kernel, model.layers[-1].kernel]
        step_var = tf.Variable(0, dtype=tf.int64)
        shadows = [tf.Variable(v) for v in model.trainable_variables]
        x_all, y_all = tf.constant(x), tf.constant(y)

        @tf.function
        def train_step(indices):
            images, labels = tf.gather(x_all, indices), tf.gather(y_all, indices)
            with tf.GradientTape() as tape:
                logits = model(images, training=True)
                cross_entropy = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
                loss = cross_entropy + 1e-4 * tf.add_n([tf.nn.l2_loss(w) for w in dense])
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            updates = tf.cast(step_var, tf.float32)
            decay = tf.minimum(0.99, (1.0 + updates) / (10.0 + updates))
            for shadow, variable in zip(shadows, model.trainable_variables):
                shadow.assign(decay * shadow + (1.0 - decay) * variable)
            step_var.assign_add(1)
            return loss

        order = np.concatenate([np.random.default_rng(e).permutation(55_000) for e in range(args.steps // 550 + 1)])
        for step in range(args.steps):
            if step == WARMUP_STEPS:
                train_step(order[step * 100:(step + 1) * 100]).numpy()  # finish the warm-up before timing
                start = time.perf_counter()
                continue
            loss = train_step(order[step * 100:(step + 1) * 100])
        loss.numpy()
        train_rate = (args.steps - WARMUP_STEPS - 1) * 100 / (time.perf_counter() - start)
        for shadow, variable in zip(shadows, model.trainable_variables):  # evaluate averaged, as the seed does
            variable.assign(shadow)
    else:
        model = build_model(5e-5)
        model.compile(optimizer=tf.keras.optimizers.SGD(schedule, use_ema=True, ema_momentum=0.99),
                      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))

        class Clock(tf.keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                if batch == WARMUP_STEPS:
                    self.start = time.perf_counter()

        clock = Clock()
        model.fit(x, y, batch_size=100, epochs=1, steps_per_epoch=args.steps, shuffle=True,
                  verbose=0, callbacks=[clock])
        train_rate = (args.steps - WARMUP_STEPS) * 100 / (time.perf_counter() - clock.start)
        model.optimizer.finalize_variable_values(model.trainable_variables)

    infer = tf.function(lambda images: model(images, training=False))
    infer(x_test[:args.infer_batch]).numpy()
    start = time.perf_counter()
    logits = np.concatenate([infer(x_test[i:i + args.infer_batch]).numpy()
                             for i in range(0, len(x_test), args.infer_batch)])
    infer_rate = len(x_test) / (time.perf_counter() - start)
    print(json.dumps({"implementation": f"tensorflow-{args.mode}", "steps": args.steps, "batch_size": 100,
                      "train_images_per_s": round(train_rate), "infer_images_per_s": round(infer_rate),
                      "test_accuracy": float((logits.argmax(1) == y_test).mean()),
                      "threads": os.cpu_count(), "tensorflow": tf.__version__}))


if __name__ == "__main__":
    main()
