"""Tests of the TensorFlow tensor-bundle reader (and of the tests' own bundle writer) and the Keras HDF5 reader
(no TensorFlow involved).

The released Astromer 1 checkpoint and the values TensorFlow itself read from it (``macho_a0_weights.npz``)
come from the shared reference folder; tests that need them are skipped when it is absent.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
import tf_bundle_writer as writer
from keras_files import write_keras2_layers
from tf_bundle_writer import crc32c, write_tensor_bundle

from astromer_hf.convert import tf_bundle
from astromer_hf.convert.keras_h5 import read_keras_h5
from astromer_hf.convert.tf_bundle import OBJECT_GRAPH_KEY, list_tensor_bundle, read_tensor_bundle

VARIABLE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
A1_PARAMETER_COUNT = 661_505
A1_DATA_FILE = "weights.data-00000-of-00001"
WQ_KERNEL = "layer_with_weights-0/enc_layers/1/mha/wq/kernel" + VARIABLE_SUFFIX


# ------------------------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def checkpoint_dir(reference_dir: Path) -> Path:
    return reference_dir / "tf_checkpoint"


@pytest.fixture(scope="module")
def tf_values(reference_dir: Path) -> dict[str, np.ndarray]:
    """What TensorFlow returned for each variable, keyed by the full checkpoint key."""
    with np.load(reference_dir / "macho_a0_weights.npz") as npz:
        return {name + VARIABLE_SUFFIX: npz[name] for name in npz.files}


@pytest.fixture(scope="module")
def a1_weights(checkpoint_dir: Path) -> dict[str, np.ndarray]:
    return read_tensor_bundle(checkpoint_dir / "weights")


@pytest.fixture
def checkpoint_copy(tmp_path: Path, checkpoint_dir: Path) -> Path:
    """A writable copy of the released checkpoint folder; returns the bundle prefix."""
    for item in checkpoint_dir.iterdir():
        shutil.copyfile(item, tmp_path / item.name)
    return tmp_path / "weights"


def assert_bit_identical(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    assert actual.tobytes() == expected.tobytes()


def flip_byte(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x5A
    path.write_bytes(bytes(data))


def data_block_handles(table: bytes) -> list[tuple[int, int]]:
    """(offset, size) of every data block of a table file, read through the footer and index block."""
    footer = table[-48:]
    _, _, pos = tf_bundle._read_block_handle(footer, 0)
    index_offset, index_size, _ = tf_bundle._read_block_handle(footer, pos)
    index_block = tf_bundle._read_block(table, index_offset, index_size)
    return [tf_bundle._read_block_handle(handle, 0)[:2] for _, handle in tf_bundle._block_entries(index_block)]


def write_index(prefix: Path, header: bytes, entries: dict[bytes, bytes]) -> None:
    """Write a hand-made ``.index`` file (for bundle features the writer never produces)."""
    table = writer.build_table([(b"", header), *sorted(entries.items())])
    prefix.with_name(prefix.name + ".index").write_bytes(table)


LITTLE_ENDIAN_HEADER = writer.field_varint(1, 1) + writer.field_bytes(3, writer.field_varint(1, 1))


# ------------------------------------------------------------------------------------------------ CRC32C


def test_crc32c_known_values() -> None:
    # Check value of the Castagnoli CRC, and the iSCSI (RFC 3720) test vectors.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C


@pytest.mark.parametrize("size", [4, 5, 127, 128, 129, 1000, 16383, 16384, 70001, 262147])
def test_vectorised_crc32c_matches_table_loop(size: int) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    expected = writer.crc32c_table_loop(data.tobytes())
    assert writer.crc32c_vectorised(data) == expected
    assert crc32c(data) == crc32c(data.tobytes()) == expected


# ---------------------------------------------------------------------------------------- released A1 checkpoint


def test_real_checkpoint_is_bit_identical_to_tensorflow(a1_weights, tf_values) -> None:
    assert list(a1_weights) == sorted(tf_values)
    assert len(a1_weights) == 38
    for name, expected in tf_values.items():
        assert_bit_identical(a1_weights[name], expected)
    assert sum(array.size for array in a1_weights.values()) == A1_PARAMETER_COUNT


def test_list_tensor_bundle_agrees_with_the_data(checkpoint_dir: Path, tf_values) -> None:
    listing = list_tensor_bundle(checkpoint_dir / "weights")
    assert set(listing) == set(tf_values) | {OBJECT_GRAPH_KEY}
    assert listing[OBJECT_GRAPH_KEY] == (np.dtype(object), ())
    for name, expected in tf_values.items():
        dtype, shape = listing[name]
        assert (dtype, shape) == (expected.dtype, expected.shape)


def test_bundle_can_be_named_by_prefix_index_file_or_folder(checkpoint_dir: Path, a1_weights) -> None:
    for path in (checkpoint_dir / "weights", checkpoint_dir / "weights.index", checkpoint_dir, str(checkpoint_dir)):
        weights = read_tensor_bundle(path)
        assert list(weights) == list(a1_weights)
        for name, array in weights.items():
            assert_bit_identical(array, a1_weights[name])


def test_object_graph_is_returned_only_on_request(checkpoint_dir: Path, a1_weights) -> None:
    everything = read_tensor_bundle(checkpoint_dir, include_strings=True)
    assert set(everything) == set(a1_weights) | {OBJECT_GRAPH_KEY}
    graph = everything[OBJECT_GRAPH_KEY]
    assert graph.dtype == object and graph.shape == ()
    assert isinstance(graph[()], bytes) and len(graph[()]) == 6595
    # The serialized TrackableObjectGraph names every checkpoint key and the Keras variable behind it.
    assert b"encoder/dense_3/kernel" in graph[()]
    assert all(name.encode() in graph[()] for name in a1_weights)


def test_writer_round_trips_the_real_checkpoint(tmp_path: Path, checkpoint_dir: Path) -> None:
    original = read_tensor_bundle(checkpoint_dir, include_strings=True)
    write_tensor_bundle(tmp_path / "copy", original)
    again = read_tensor_bundle(tmp_path / "copy", include_strings=True)
    assert list(again) == list(original)
    for name, array in original.items():
        if array.dtype == object:
            assert again[name][()] == array[()]
        else:
            assert_bit_identical(again[name], array)


def test_writer_reproduces_the_released_files_byte_for_byte(tmp_path: Path, checkpoint_dir: Path) -> None:
    """Given TensorFlow's order of the tensors in the data file, the writer's output is TensorFlow's output."""
    tensors = read_tensor_bundle(checkpoint_dir, include_strings=True)
    entries = tf_bundle._parse_index(checkpoint_dir / "weights.index").entries
    in_data_order = {name: tensors[name] for name in sorted(entries, key=lambda name: entries[name].offset)}
    write_tensor_bundle(tmp_path / "weights", in_data_order)
    for suffix in (".index", ".data-00000-of-00001"):
        assert (tmp_path / f"weights{suffix}").read_bytes() == (checkpoint_dir / f"weights{suffix}").read_bytes()


# ------------------------------------------------------------------------------------------------ writer -> reader


def many_tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    tensors: dict[str, np.ndarray] = {
        "scalar/float32": np.array(3.25, dtype=np.float32),
        "scalar/int64": np.array(-(2**40), dtype=np.int64),
        "scalar/bool": np.array(True),
        "empty/float32": np.zeros((0, 3), dtype=np.float32),
        "big_endian/float64": rng.normal(size=(4, 5)).astype(">f8"),
        "strings/vector": np.array([b"", b"a", b"\x00binary\xff" * 30], dtype=object),
        "strings/scalar": np.array(b"hello", dtype=object),
        "strings/empty": np.array([], dtype=object),
    }
    dtypes = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
              "uint64", "complex64", "complex128", "bool"]  # fmt: skip
    for i in range(70):  # long names so the index spans several ~4 KiB data blocks
        dtype = np.dtype(dtypes[i % len(dtypes)])
        shape = [(), (3,), (2, 3), (1, 4, 2)][i % 4]
        raw = rng.integers(0, 256, int(np.prod(shape)) * dtype.itemsize, dtype=np.uint8)
        values = raw.view(dtype).reshape(shape) if dtype.kind not in "fcb" else rng.normal(size=shape).astype(dtype)
        if dtype.kind == "b":
            values = rng.random(shape) < 0.5
        tensors[f"model/layer_{i:03d}/{'sublayer/' * 8}{dtype.name}"] = np.asarray(values)
    tensors["model/big/kernel"] = rng.normal(size=(300, 256)).astype(np.float32)  # vectorised CRC path
    return tensors


def test_writer_then_reader_round_trips_all_dtypes(tmp_path: Path) -> None:
    tensors = many_tensors()
    write_tensor_bundle(tmp_path / "bundle", tensors)
    back = read_tensor_bundle(tmp_path / "bundle", include_strings=True)
    assert list(back) == sorted(tensors)
    for name, expected in tensors.items():
        actual = back[name]
        if expected.dtype == object:
            assert actual.shape == expected.shape
            assert actual.reshape(-1).tolist() == expected.reshape(-1).tolist()
        else:
            assert_bit_identical(actual, expected.astype(expected.dtype.newbyteorder("<")))
    numeric_only = read_tensor_bundle(tmp_path / "bundle")
    assert set(numeric_only) == {name for name, value in tensors.items() if value.dtype != object}
    listing = list_tensor_bundle(tmp_path / "bundle.index")
    assert {name: info.shape for name, info in listing.items()} == {n: t.shape for n, t in tensors.items()}


def test_writer_splits_blocks_and_places_restart_points(tmp_path: Path) -> None:
    write_tensor_bundle(tmp_path / "bundle", many_tensors())
    table = (tmp_path / "bundle.index").read_bytes()
    handles = data_block_handles(table)
    assert len(handles) >= 2
    total = 0
    for offset, size in handles:
        block = tf_bundle._read_block(table, offset, size)
        assert size <= 4096 + 1024  # a block is closed once it reaches ~4 KiB
        n_entries = len(tf_bundle._block_entries(block))
        (n_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
        assert n_restarts == -(-n_entries // 16)
        restarts = struct.unpack_from(f"<{n_restarts}I", block, len(block) - 4 - 4 * n_restarts)
        for restart in restarts:
            shared, _ = tf_bundle._read_varint(block, restart)
            assert shared == 0  # keys at restart points are stored in full
        total += n_entries
    assert total == len(many_tensors()) + 1  # plus the header entry


def test_writer_rejects_what_tensorflow_cannot_store(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="no TensorFlow DataType"):
        write_tensor_bundle(tmp_path / "bad", {"text": np.array(["unicode"])})
    with pytest.raises(ValueError, match="reserved"):
        write_tensor_bundle(tmp_path / "bad", {"": np.zeros(1)})


# ------------------------------------------------------------------------------------------------ locating bundles


def test_folder_with_several_bundles_uses_the_checkpoint_file(tmp_path: Path) -> None:
    write_tensor_bundle(tmp_path / "ckpt-1", {"x": np.array([1.0])})
    write_tensor_bundle(tmp_path / "ckpt-2", {"x": np.array([2.0])})
    with pytest.raises(ValueError, match="several bundles"):
        read_tensor_bundle(tmp_path)
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "ckpt-2"\nall_model_checkpoint_paths: "ckpt-1"\n')
    assert read_tensor_bundle(tmp_path)["x"][0] == 2.0
    # An absolute path recorded on another machine falls back to the file of that name in the folder.
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "/elsewhere/run/ckpt-1"\n')
    assert read_tensor_bundle(tmp_path)["x"][0] == 1.0


def test_missing_index_is_reported_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no tensor-bundle index"):
        read_tensor_bundle(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"nothing\.index"):
        list_tensor_bundle(tmp_path / "nothing")


# ------------------------------------------------------------------------------------------------ corruption


def test_flipped_byte_in_data_file_names_the_tensor(checkpoint_copy: Path) -> None:
    entry = tf_bundle._parse_index(checkpoint_copy.with_name("weights.index")).entries[WQ_KERNEL]
    flip_byte(checkpoint_copy.with_name(A1_DATA_FILE), entry.offset + entry.size // 2)
    with pytest.raises(ValueError, match=f"CRC32C mismatch for tensor '{WQ_KERNEL}'") as info:
        read_tensor_bundle(checkpoint_copy)
    assert A1_DATA_FILE in str(info.value)
    assert list_tensor_bundle(checkpoint_copy)[WQ_KERNEL].shape == (256, 256)  # the index is still fine


def test_flipped_byte_in_object_graph_only_matters_when_strings_are_read(checkpoint_copy: Path) -> None:
    entry = tf_bundle._parse_index(checkpoint_copy.with_name("weights.index")).entries[OBJECT_GRAPH_KEY]
    flip_byte(checkpoint_copy.with_name(A1_DATA_FILE), entry.offset + entry.size - 10)
    assert len(read_tensor_bundle(checkpoint_copy)) == 38
    with pytest.raises(ValueError, match=f"{OBJECT_GRAPH_KEY}.*CRC32C mismatch"):
        read_tensor_bundle(checkpoint_copy, include_strings=True)


@pytest.mark.parametrize(
    ("position", "message"),
    # Byte 100 is inside the data block; -1 is the last magic byte; -45 is the first byte of the footer's
    # index-block handle, which then points at the wrong bytes.
    [(100, "CRC32C mismatch in the table block"), (-1, "bad table magic number"), (-45, "CRC32C mismatch")],
    ids=["data-block", "magic", "index-handle"],
)
def test_flipped_byte_in_index_is_detected(checkpoint_copy: Path, position: int, message: str) -> None:
    index = checkpoint_copy.with_name("weights.index")
    flip_byte(index, position % index.stat().st_size)
    with pytest.raises(ValueError, match=message) as info:
        list_tensor_bundle(checkpoint_copy)
    assert str(index) in str(info.value)


@pytest.mark.parametrize("keep", [20, 1300, 2600])
def test_truncated_index_is_detected(checkpoint_copy: Path, keep: int) -> None:
    index = checkpoint_copy.with_name("weights.index")
    index.write_bytes(index.read_bytes()[:keep])
    with pytest.raises(ValueError, match="truncated") as info:
        read_tensor_bundle(checkpoint_copy)
    assert str(index) in str(info.value)


def test_missing_data_shard_is_reported_with_its_path(checkpoint_copy: Path) -> None:
    shard = checkpoint_copy.with_name(A1_DATA_FILE)
    shard.unlink()
    assert len(list_tensor_bundle(checkpoint_copy)) == 39  # listing needs the index only
    with pytest.raises(FileNotFoundError, match="data shard not found") as info:
        read_tensor_bundle(checkpoint_copy)
    assert str(shard) in str(info.value)


def test_truncated_data_shard_names_the_tensor(checkpoint_copy: Path) -> None:
    shard = checkpoint_copy.with_name(A1_DATA_FILE)
    shard.write_bytes(shard.read_bytes()[:2_000_000])
    with pytest.raises(ValueError, match="truncated; tensor 'layer_with_weights-0/enc_layers/1/mha/"):
        read_tensor_bundle(checkpoint_copy)


def test_compressed_blocks_are_refused(tmp_path: Path) -> None:
    write_tensor_bundle(tmp_path / "bundle", {"x": np.arange(3.0)})
    index = tmp_path / "bundle.index"
    table = bytearray(index.read_bytes())
    ((offset, size),) = data_block_handles(bytes(table))
    table[offset + size] = 1  # Snappy, with a checksum that is valid for it
    block_crc = tf_bundle._mask(crc32c(table[offset : offset + size + 1]))
    table[offset + size + 1 : offset + size + 5] = struct.pack("<I", block_crc)
    index.write_bytes(bytes(table))
    with pytest.raises(ValueError, match="Snappy-compressed"):
        read_tensor_bundle(tmp_path / "bundle")


@pytest.mark.parametrize(
    ("header", "entry", "message"),
    [
        (LITTLE_ENDIAN_HEADER, writer.encode_entry(14, (2,), 0, 4, 1), "unsupported dtype DT_BFLOAT16"),
        (LITTLE_ENDIAN_HEADER, writer.encode_entry(20, (), 0, 4, 1), "unsupported dtype DT_RESOURCE"),
        (
            LITTLE_ENDIAN_HEADER,
            writer.encode_entry(1, (4,), 0, 8, 1) + writer.field_bytes(7, writer.field_bytes(1, b"")),
            "partitioned",
        ),
        (LITTLE_ENDIAN_HEADER + writer.field_varint(2, 1), writer.encode_entry(1, (1,), 0, 4, 1), "big-endian"),
        (
            writer.field_varint(1, 1) + writer.field_bytes(3, writer.field_varint(2, 2)),
            writer.encode_entry(1, (1,), 0, 4, 1),
            "format version >= 2",
        ),
    ],
    ids=["bfloat16", "resource", "sliced", "big-endian", "newer-format"],
)
def test_unsupported_bundles_are_refused(tmp_path: Path, header: bytes, entry: bytes, message: str) -> None:
    write_index(tmp_path / "bundle", header, {b"var": entry})
    with pytest.raises(ValueError, match=message) as info:
        list_tensor_bundle(tmp_path / "bundle")
    assert "bundle.index" in str(info.value)


# ------------------------------------------------------------------------------------------------ Keras HDF5


def keras_weight_name(checkpoint_key: str) -> tuple[str, str]:
    """(layer, weight name) in the style of tf.keras for an A1 checkpoint key, e.g. ``encoder/inp_transform/bias:0``."""
    owner, rest = checkpoint_key.removesuffix(VARIABLE_SUFFIX).split("/", 1)
    layer = "encoder" if owner == "layer_with_weights-0" else "regression"
    return layer, f"{layer}/{rest}:0"


def write_keras2_h5(path: Path, weights: dict[str, np.ndarray], full_model: bool) -> list[str]:
    """Write ``weights`` the way tf.keras ``save_weights``/``save`` lays them out; returns the weight names."""
    by_layer: dict[str, list[tuple[str, np.ndarray]]] = {"input_1": [], "encoder": [], "regression": []}
    for key, array in weights.items():
        layer, name = keras_weight_name(key)
        by_layer[layer].append((name, array))
    write_keras2_layers(path, by_layer, full_model)
    return [name for items in by_layer.values() for name, _ in items]


@pytest.mark.parametrize("full_model", [False, True], ids=["save_weights", "full-model"])
def test_keras2_h5_round_trip(tmp_path: Path, tf_values, full_model: bool) -> None:
    names = write_keras2_h5(tmp_path / "model.h5", tf_values, full_model)
    weights = read_keras_h5(tmp_path / "model.h5")
    assert list(weights) == names
    assert len(weights) == 38
    for key, expected in tf_values.items():
        assert_bit_identical(weights[keras_weight_name(key)[1]], expected)


def test_keras2_h5_joins_split_attributes(tmp_path: Path) -> None:
    names = [f"dense/w{i}:0" for i in range(5)]
    with h5py.File(tmp_path / "split.h5", "w") as h5:
        h5.attrs["layer_names0"] = np.array([b"dense"])
        layer = h5.create_group("dense")
        layer.attrs["weight_names0"] = np.array([n.encode() for n in names[:3]])
        layer.attrs["weight_names1"] = np.array([n.encode() for n in names[3:]])
        for i, name in enumerate(names):
            layer.create_dataset(name, data=np.full(2, i, dtype=np.float64))
    weights = read_keras_h5(tmp_path / "split.h5")
    assert list(weights) == names
    assert [float(w[0]) for w in weights.values()] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_keras2_h5_with_a_listed_but_missing_weight(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "broken.h5", "w") as h5:
        h5.attrs["layer_names"] = np.array([b"dense"])
        h5.create_group("dense").attrs["weight_names"] = np.array([b"dense/kernel:0"])
    with pytest.raises(ValueError, match="'dense/kernel:0' of layer 'dense' has no dataset"):
        read_keras_h5(tmp_path / "broken.h5")


def test_keras3_weights_h5(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    expected = {"layers/dense/vars/0": rng.normal(size=(4, 2)), "layers/dense/vars/1": rng.normal(size=2)}
    for i in range(12):
        expected[f"layers/encoder/layers/attention/vars/{i}"] = rng.normal(size=i + 1).astype(np.float32)
    with h5py.File(tmp_path / "model.weights.h5", "w") as h5:
        h5.create_group("vars")  # the model object itself owns no variables
        for key, array in expected.items():
            h5.create_dataset(key, data=array)
    weights = read_keras_h5(tmp_path / "model.weights.h5")
    assert list(weights) == list(expected)  # "10" and "11" come after "9"
    for key, array in expected.items():
        assert_bit_identical(weights[key], array)


def test_keras_h5_errors(tmp_path: Path) -> None:
    (tmp_path / "not.h5").write_bytes(b"definitely not HDF5" * 10)
    with pytest.raises(ValueError, match=r"not\.h5 is not an HDF5 file"):
        read_keras_h5(tmp_path / "not.h5")
    with h5py.File(tmp_path / "empty.h5", "w") as h5:
        h5.create_dataset("something", data=np.zeros(3))
    with pytest.raises(ValueError, match="no Keras weights found"):
        read_keras_h5(tmp_path / "empty.h5")
    with pytest.raises(FileNotFoundError, match=r"missing\.h5"):
        read_keras_h5(tmp_path / "missing.h5")


def test_the_package_only_reads_bundles() -> None:
    """The writer and the NumPy CRC32C serve the tests only, so they live in tests/tf_bundle_writer.py."""
    package = Path(tf_bundle.__file__).resolve().parents[1]
    for name in ("write_tensor_bundle", "_build_table", "_crc32c_vectorised", "_encode_varint"):
        assert not hasattr(tf_bundle, name), name
    assert "write_tensor_bundle" not in tf_bundle.__all__
    assert not [p for p in package.rglob("*.py") if "write_tensor_bundle" in p.read_text()]
    assert tf_bundle.crc32c(b"123456789") == 0xE3069283  # the reader's own (table loop) CRC
