"""Training the autoencoder under a tf.distribute strategy: one machine's devices or several workers.

Keras 3's ``model.fit`` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585: "a
PerReplica value cannot be converted to a tensor"), so this module trains with a short custom
loop instead: ``strategy.run`` of a GradientTape step on a distributed dataset. It reports the
same per-epoch progress lines and returns the same history as ``keras_model.fit``, including
early stopping that restores the best epoch's weights.

``batch_size`` is the GLOBAL batch: each step consumes ``batch_size`` windows split over all
replicas of all workers, so the same options give the same schedule (steps per epoch, learning
rate per example) on one worker or several.

Every worker of a cluster runs ``lstm-rare-event train RUN --distribute multi-worker``; TF_CONFIG
describes the cluster and this worker's place in it, and only the chief writes.
"""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np

from lstm_rare_event import log
from lstm_rare_event.detectors.lstm_ae import keras_model
from lstm_rare_event.detectors.lstm_ae.keras_model import keras, tf  # TensorFlow, start-up notices silenced
from lstm_rare_event.detectors.lstm_ae.spec import Architecture
from lstm_rare_event.errors import UserError
from lstm_rare_event.preprocess.windows import WindowArray

STRATEGIES = ("none", "mirrored", "multi-worker")

TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}'
)


def _tf_config(required: bool) -> dict | None:
    """TF_CONFIG parsed and checked; None when it is absent and not ``required``."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        if required:
            raise UserError(f"the multi-worker strategy needs the TF_CONFIG environment variable, "
                            f"which is not set; expected JSON such as {TF_CONFIG_EXAMPLE}")
        return None

    def bad(why: str) -> UserError:
        return UserError(f"TF_CONFIG: {why}; expected JSON such as {TF_CONFIG_EXAMPLE}")

    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(config, dict):
        raise bad("not a JSON object")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise bad("no 'cluster' object mapping task types to lists of host:port addresses")
    for kind, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses or not all(
            isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addresses
        ):
            raise bad(f"cluster {kind!r} is not a non-empty list of host:port addresses")
    if "worker" not in cluster and "chief" not in cluster:
        raise bad("the cluster has neither 'worker' nor 'chief' tasks")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise bad("no 'task' object with 'type' and 'index'")
    kind, index = task["type"], task["index"]
    if kind not in cluster:
        raise bad(f"task type {kind!r} is not in the cluster ({', '.join(cluster)})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[kind]):
        raise bad(f"task index {index!r} is not between 0 and {len(cluster[kind]) - 1} for {kind!r}")
    return config


def is_chief() -> bool:
    """Whether this process is the chief: task type chief, or worker 0 when the cluster has no
    chief; a process without TF_CONFIG is on its own and so the chief."""
    config = _tf_config(required=False)
    if config is None:
        return True
    kind, index = config["task"]["type"], config["task"]["index"]
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in config["cluster"])


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``none``: TensorFlow's default (no distribution); ``mirrored``: all local GPUs, else the
    CPU; ``multi-worker``: synchronous training over the cluster that TF_CONFIG describes."""
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        with keras_model._native_stderr_silenced():
            return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        _tf_config(required=True)
        with keras_model._native_stderr_silenced():  # gRPC server start-up notices
            return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserError(f"strategy {name!r}: choose one of {', '.join(STRATEGIES)}")


def _distributed(strategy, X: WindowArray | np.ndarray, batch_size: int, shuffle_seed: int | None):
    # Same seed on every worker: the same order each epoch, which DATA sharding relies on.
    dataset = keras_model.window_dataset(X, batch_size, shuffle_seed)
    options = tf.data.Options()
    options.deterministic = True
    # The windows are cut from an array, not read from files, so the default AUTO policy would
    # try FILE sharding, fail and fall back to DATA with a warning. DATA is what we want: every
    # worker builds the same (same-seed) pipeline and keeps only its share of each global batch,
    # so no window is seen twice per epoch. OFF would make every worker process every window.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def fit_distributed(strategy, arch: Architecture, X_train: WindowArray | np.ndarray, X_valid: WindowArray | np.ndarray, *, epochs: int,
                    batch_size: int, learning_rate: float, patience: int, seed: int):
    """Build the autoencoder under ``strategy`` and train it to reconstruct its inputs with Adam
    and MSE; returns ``(model, history)`` with history as in ``keras_model.fit``.

    ``batch_size`` is global (split over all replicas). ``patience`` > 0 stops after that many
    epochs without a better validation loss and restores the best epoch's weights; 0 trains all
    ``epochs`` and keeps the last weights. Every worker of a cluster must call this with the
    same data and options.
    """
    keras_model.set_seed(seed)
    with strategy.scope():
        model = keras_model.build(arch)
        optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
        optimizer.build(model.trainable_variables)  # its slots are created here, not in a traced step
    train_data = _distributed(strategy, X_train, batch_size, shuffle_seed=seed)
    valid_data = _distributed(strategy, X_valid, batch_size, shuffle_seed=None)

    def per_example_mse(x, training):
        return tf.reduce_mean(tf.square(x - model(x, training=training)), axis=[1, 2])

    def train_replica(x):
        with tf.GradientTape() as tape:
            per_example = per_example_mse(x, training=True)
            # Divided by the global batch: the optimizer sums the replicas' gradients.
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=batch_size)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return tf.stack([tf.reduce_sum(per_example), tf.cast(tf.size(per_example), tf.float32)])

    def valid_replica(x):
        per_example = per_example_mse(x, training=False)
        return tf.stack([tf.reduce_sum(per_example), tf.cast(tf.size(per_example), tf.float32)])

    # The spec leaves the batch size open, so the last, partial batch does not trigger a
    # second trace (which costs seconds per function).
    @tf.function(input_signature=[train_data.element_spec])
    def train_step(x):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(train_replica, args=(x,)), axis=None)

    @tf.function(input_signature=[valid_data.element_spec])
    def valid_step(x):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(valid_replica, args=(x,)), axis=None)

    def mean_loss(step, data) -> float:
        total = np.zeros(2)
        for x in data:
            total += step(x).numpy()
        return float(total[0] / total[1]) if total[1] else float("nan")

    history: dict[str, list[float]] = {"loss": [], "val_loss": [], "seconds": []}
    best, best_weights, wait = math.inf, None, 0  # as keras.callbacks.EarlyStopping
    for epoch in range(epochs):
        start = time.perf_counter()
        loss = mean_loss(train_step, train_data)
        val_loss = mean_loss(valid_step, valid_data)
        history["loss"].append(loss)
        history["val_loss"].append(val_loss)
        history["seconds"].append(time.perf_counter() - start)
        log.info("epoch %d/%d  loss %.5f  val_loss %.5f  %.1f s", epoch + 1, epochs, loss, val_loss,
                 history["seconds"][-1])
        if not math.isfinite(loss):  # as keras.callbacks.TerminateOnNaN: a diverged run cannot recover
            break
        if patience > 0:
            if best_weights is None:
                best_weights = model.get_weights()
            wait += 1
            if val_loss < best:
                best, best_weights, wait = val_loss, model.get_weights(), 0
            elif wait >= patience and epoch > 0:
                break
    if best_weights is not None:
        # The validation loss is all-reduced, so every worker restores the same epoch.
        model.set_weights(best_weights)
    return model, history
