"""Read Keras HDF5 weight files (``.h5``) into NumPy arrays, without TensorFlow or Keras.

Two layouts are understood, both read with ``h5py``:

Keras 2 / ``tf.keras`` (``model.save_weights("x.h5")`` and full-model ``model.save("x.h5")``)
    The weights live at the file root for weight-only saves, and in the ``model_weights`` group for
    full-model saves (which also hold ``model_config`` and possibly ``optimizer_weights``, ignored here).
    That group has an attribute ``layer_names``: the layers in model order, as a byte-string array. Each
    layer has a group of the same name whose attribute ``weight_names`` lists its weights in order (for
    example ``encoder/att_layer_0/mha/WQ/kernel:0``); each weight is a dataset at that path *inside* the
    layer group, so the ``/`` in a weight name creates nested groups. Keras splits an attribute that would
    exceed HDF5's 64 KiB attribute limit into numbered pieces (``layer_names0``, ``layer_names1``, ...); the
    pieces are joined here.

Keras 3 (``model.save_weights("x.weights.h5")``, also the ``model.weights.h5`` inside a ``.keras`` archive)
    Each object that owns variables has a group (``layers/<name>``, nested ``layers/<outer>/layers/<inner>``,
    ``optimizer``, ...) with a ``vars`` subgroup holding one dataset per variable, named ``0``, ``1``, ...
    in the order of the object's variables. Names of the variables are not stored.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from .tf_bundle import TensorInfo

__all__ = ["list_keras_h5", "read_keras_h5"]

PathLike = str | os.PathLike[str]

_FULL_MODEL_GROUP = "model_weights"
_KERAS3_VARS_GROUP = "vars"


def _string_list_attribute(group: h5py.Group, name: str) -> list[str] | None:
    """A list-of-strings attribute, joined from Keras' numbered pieces if it was split; None if absent."""
    if name in group.attrs:
        pieces = [group.attrs[name]]
    else:
        pieces = []
        while f"{name}{len(pieces)}" in group.attrs:
            pieces.append(group.attrs[f"{name}{len(pieces)}"])
        if not pieces:
            return None
    return [
        item.decode("utf-8") if isinstance(item, bytes) else str(item)
        for piece in pieces
        for item in np.atleast_1d(piece)
    ]


def _keras2_datasets(path: Path, root: h5py.Group, layer_names: list[str]) -> dict[str, h5py.Dataset]:
    datasets: dict[str, h5py.Dataset] = {}
    for layer_name in layer_names:
        if layer_name not in root:
            raise ValueError(f"{path}: layer {layer_name!r} is listed in 'layer_names' but has no group")
        layer = root[layer_name]
        for weight_name in _string_list_attribute(layer, "weight_names") or []:
            if not isinstance(layer.get(weight_name), h5py.Dataset):
                raise ValueError(f"{path}: weight {weight_name!r} of layer {layer_name!r} has no dataset")
            if weight_name in datasets:
                raise ValueError(f"{path}: weight name {weight_name!r} appears in more than one layer")
            datasets[weight_name] = layer[weight_name]
    return datasets


def _keras3_datasets(root: h5py.Group) -> dict[str, h5py.Dataset]:
    """Every dataset of every ``vars`` group, keyed ``<group path>/vars/<i>``, variables in numeric order."""
    datasets: dict[str, h5py.Dataset] = {}

    def visit(group: h5py.Group) -> None:
        for name, item in group.items():
            if not isinstance(item, h5py.Group):
                continue
            if name != _KERAS3_VARS_GROUP:
                visit(item)
                continue
            # Datasets are named "0", "1", ...: order by length, then text, so that "10" follows "9".
            for index in sorted(item, key=lambda key: (len(key), key)):
                dataset = item[index]
                if isinstance(dataset, h5py.Dataset):
                    datasets[dataset.name.lstrip("/")] = dataset

    visit(root)
    return datasets


@contextmanager
def _weight_datasets(path: PathLike) -> Iterator[dict[str, h5py.Dataset]]:
    """The weight datasets of a Keras file, by weight name, while the file is open."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Keras weight file not found: {path}")
    if not h5py.is_hdf5(path):
        raise ValueError(f"{path} is not an HDF5 file, so not a Keras .h5 weight file")
    with h5py.File(path, "r") as h5:
        root = h5[_FULL_MODEL_GROUP] if isinstance(h5.get(_FULL_MODEL_GROUP), h5py.Group) else h5
        layer_names = _string_list_attribute(root, "layer_names")
        datasets = _keras2_datasets(path, root, layer_names) if layer_names is not None else _keras3_datasets(root)
        if not datasets:
            raise ValueError(
                f"{path}: no Keras weights found (no 'layer_names' attribute with weights, as Keras 2 writes, "
                "and no 'vars' datasets, as Keras 3 writes)"
            )
        yield datasets


def list_keras_h5(path: PathLike) -> dict[str, TensorInfo]:
    """Name -> (dtype, shape) of every weight of a Keras ``.h5`` file, keyed as :func:`read_keras_h5` keys them,
    without reading any values."""
    with _weight_datasets(path) as datasets:
        return {name: TensorInfo(dataset.dtype, tuple(dataset.shape)) for name, dataset in datasets.items()}


def read_keras_h5(path: PathLike, *, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Read all weights of a Keras ``.h5`` weight file or full-model ``.h5`` save.

    Args:
        path: a Keras 2 / tf.keras HDF5 file (weights only, or a full model with a ``model_weights`` group),
            or a Keras 3 ``.weights.h5`` file.
        names: read only these weights (in this order); by default all of them.

    Returns:
        Keras 2: ``{weight name: array}`` keyed exactly as listed in the layers' ``weight_names`` attributes
        (``:0`` suffix kept), in file order (layers as in ``layer_names``, then each layer's weights).
        Keras 3: ``{"layers/<name>/vars/<i>": array}``, one entry per ``vars`` dataset (optimizer variables
        included if the file has them), groups in HDF5 (alphabetical) order and variables by index.
        Arrays keep their stored dtype and shape.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not HDF5, holds no Keras weights, or its layer/weight lists point at missing
            groups or datasets (the message names the file).
    """
    with _weight_datasets(path) as datasets:
        if names is None:
            names = list(datasets)
        absent = [name for name in names if name not in datasets]
        if absent:
            raise ValueError(f"{path}: no weight named {', '.join(map(repr, absent))}")
        return {name: np.asarray(datasets[name][()]) for name in names}
