"""The original TensorFlow Astromer's side of ``python -m benchmarks``: a worker that times the original code.

Run by ``python -m benchmarks`` with an interpreter where TensorFlow and the original ``ASTROMER`` package (PyPI
``ASTROMER==0.1.8``, Astromer 1) import; it is never imported by astromer_hf and imports nothing of it, so it also
runs from a separate virtual environment (``--original-python /path/to/venv/bin/python``).

Protocol: one JSON request per line on stdin, one JSON answer per line on the original stdout (everything else the
package prints, including the terminal clear it sends at import, goes to stderr). Each timed request runs its task
once and answers ``{"seconds": S}``; the caller interleaves these calls with its own, so both sides see the same
machine load. Requests:

* ``{"op": "hello"}``: versions and thread settings;
* ``{"op": "matmul", "n": N, "dtype": "float32" | "bfloat16"}``: one ``N x N`` by ``N x N`` product;
* ``{"op": "forward", "spec": SPEC, "batch": B, "inputs": NPZ}``: the encoder under ``tf.function`` on the first
  ``B`` windows of ``NPZ`` (``magnitudes``, ``times``, ``(W, T)``);
* ``{"op": "train", "spec": SPEC, "batch": B, "inputs": NPZ}``: one step of the package's own ``train_step``
  (forward, masked RMSE, gradients, Adam) on windows with masks (``labels``, ``attention_mask``,
  ``masked_positions``, ``probed_positions``);
* ``{"op": "encode", "spec": SPEC, "curves": NPZ, "batch": B}``: ``SingleBandEncoder.encode`` on the curves of
  ``NPZ`` (``values`` ``(N, 3)`` rows time, mag, err; ``offsets``), its own preprocessing included;
* ``{"op": "rss"}``: this process's peak resident memory.

``SPEC`` is ``{"layers", "d_model", "heads", "dff", "maxlen"}``. The first call of a task traces it: the caller sends
one warm-up call first.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback


def _setup_streams():
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the package prints to stdout (and clears the terminal at import): send all that to stderr
    return protocol


class Worker:
    def __init__(self) -> None:
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # the original code is written for Keras 2 (tf_keras)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import numpy as np
        import tensorflow as tf

        from ASTROMER.core.astromer import train_step
        from ASTROMER.models import SingleBandEncoder

        self.np, self.tf = np, tf
        self.encoder_class, self.train_step = SingleBandEncoder, train_step
        self.models: dict = {}
        self.forward_functions: dict = {}
        self.optimizers: dict = {}
        self.arrays: dict = {}

    # -- helpers ----------------------------------------------------------------------------------------------------
    def model(self, spec: dict):
        key = tuple(sorted(spec.items()))
        if key not in self.models:
            self.models[key] = self.encoder_class(
                num_layers=spec["layers"], d_model=spec["d_model"], num_heads=spec["heads"], dff=spec["dff"],
                base=1000, dropout=0.1, maxlen=spec["maxlen"],
            )
        return self.models[key]

    def load(self, path: str) -> dict:
        if path not in self.arrays:
            with self.np.load(path) as data:
                self.arrays[path] = {name: data[name] for name in data.files}
        return self.arrays[path]

    def window_batch(self, path: str, batch: int, *, train: bool) -> dict:
        key = (path, batch, train)
        if key not in self.arrays:
            np, tf = self.np, self.tf
            data = self.load(path)
            column = lambda name: tf.constant(data[name][:batch, :, None].astype(np.float32))  # noqa: E731
            padding = 1.0 - data["attention_mask"][:batch].astype(np.float32)
            hidden = np.maximum(padding, data["masked_positions"][:batch].astype(np.float32)) if train else padding
            windows = {
                "input": column("magnitudes"),
                "times": column("times"),
                "mask_in": tf.constant(hidden[:, :, None]),
                "length": tf.constant(data["attention_mask"][:batch].astype(np.int32)),
            }
            if train:
                probed = data["probed_positions"][:batch] * data["attention_mask"][:batch]
                windows["output"] = column("labels")
                windows["mask_out"] = tf.constant(probed.astype(np.float32)[:, :, None])
            self.arrays[key] = windows
        return self.arrays[key]

    # -- requests ---------------------------------------------------------------------------------------------------
    def hello(self, request: dict) -> dict:
        from importlib import metadata

        tf = self.tf
        return {
            "tensorflow": tf.__version__,
            "astromer": metadata.version("ASTROMER"),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "python": sys.version.split()[0],
        }

    def matmul(self, request: dict) -> dict:
        tf, n = self.tf, int(request["n"])
        key = ("matmul", n, request["dtype"])
        if key not in self.arrays:
            dtype = tf.bfloat16 if request["dtype"] == "bfloat16" else tf.float32
            self.arrays[key] = (tf.cast(tf.random.normal((n, n)), dtype), tf.cast(tf.random.normal((n, n)), dtype))
        a, b = self.arrays[key]
        start = time.perf_counter()
        tf.linalg.matmul(a, b).numpy()
        return {"seconds": time.perf_counter() - start}

    def forward(self, request: dict) -> dict:
        tf = self.tf
        model = self.model(request["spec"])
        key = tuple(sorted(request["spec"].items()))
        if key not in self.forward_functions:
            encoder = model.model.get_layer("encoder")
            self.forward_functions[key] = tf.function(lambda batch: encoder(batch, training=False))
        windows = self.window_batch(request["inputs"], int(request["batch"]), train=False)
        start = time.perf_counter()
        self.forward_functions[key](windows).numpy()
        return {"seconds": time.perf_counter() - start}

    def train(self, request: dict) -> dict:
        tf = self.tf
        model = self.model(request["spec"]).model
        key = tuple(sorted(request["spec"].items()))
        if key not in self.optimizers:
            self.optimizers[key] = tf.keras.optimizers.Adam(1e-3, beta_1=0.9, beta_2=0.98, epsilon=1e-9)
        windows = self.window_batch(request["inputs"], int(request["batch"]), train=True)
        start = time.perf_counter()
        loss = self.train_step(model, windows, self.optimizers[key])
        loss.numpy()
        return {"seconds": time.perf_counter() - start, "loss": float(loss.numpy())}

    def encode(self, request: dict) -> dict:
        np = self.np
        model = self.model(request["spec"])
        data = self.load(request["curves"])
        offsets = data["offsets"]
        curves = [data["values"][offsets[i]:offsets[i + 1]].astype(np.float64) for i in range(len(offsets) - 1)]
        ids = [f"curve-{i:06d}" for i in range(len(curves))]
        start = time.perf_counter()
        out = model.encode(curves, oids_list=ids, batch_size=int(request["batch"]))
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "curves": len(out), "rows": int(sum(len(rows) for rows in out))}

    def rss(self, request: dict) -> dict:
        with open("/proc/self/status") as status:  # VmHWM: the peak of this process, not of its parent
            line = next(x for x in status if x.startswith("VmHWM:"))
        return {"peak_rss_mb": int(line.split()[1]) / 1024}


def main() -> int:
    protocol = _setup_streams()
    try:
        worker = Worker()
    except Exception as error:  # noqa: BLE001 - say why the original code cannot run, then stop
        protocol.write(json.dumps({"error": f"{type(error).__name__}: {error}"}) + "\n")
        return 1
    protocol.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if request.get("op") == "quit":
            break
        try:
            answer = getattr(worker, request["op"])(request)
        except Exception as error:  # noqa: BLE001 - the caller records the failure and goes on
            traceback.print_exc()
            answer = {"error": f"{type(error).__name__}: {error}"}
        protocol.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
