"""Write Keras 2 ``.h5`` weight files in the layout tf.keras uses, for tests (no TensorFlow needed).

Layout: the root (or, for full-model saves, the ``model_weights`` group) has the attribute ``layer_names``; each layer
group has the attribute ``weight_names`` and holds one dataset per weight at that (slash-separated) path.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np


def write_keras2_layers(path: Path, layers: dict[str, list[tuple[str, np.ndarray]]], full_model: bool = False) -> None:
    """``layers`` maps a layer name to its ``(weight name, array)`` pairs, e.g. ``("encoder/inp_transform/bias:0", b)``."""
    with h5py.File(path, "w") as h5:
        root = h5
        if full_model:
            h5.attrs["model_config"] = b'{"class_name": "Functional"}'
            h5.create_group("optimizer_weights").create_dataset("Adam/iter:0", data=np.int64(5))
            root = h5.create_group("model_weights")
        root.attrs["layer_names"] = np.array([name.encode() for name in layers])
        for layer, items in layers.items():
            group = root.create_group(layer)
            group.attrs["weight_names"] = np.array([name.encode() for name, _ in items])
            for name, array in items:
                group.create_dataset(name, data=array)
