"""Write TensorFlow tensor bundles, and a fast NumPy CRC32C, for the tests (no TensorFlow needed).

The package only reads bundles (:mod:`astromer_hf.convert.tf_bundle`); the tests need to *make* them: edited copies
of the released checkpoint, checkpoints in the Astromer 2 layer names, hand-made indexes for the features and the
hostile inputs the reader must refuse. :func:`write_tensor_bundle` produces what TensorFlow's ``BundleWriter``
produces (tested byte for byte against the released checkpoint). :func:`crc32c` checksums large payloads with a
lane-parallel NumPy algorithm (the reader's table loop is slow on megabytes); both agree, which is tested too.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np

from astromer_hf.convert.tf_bundle import (
    _BLOCK_TYPE_NONE,
    _BUNDLE_VERSION,
    _CRC_TABLE,
    _DT_STRING,
    _HANDLES_SIZE,
    _NUMERIC_DTYPES,
    _TABLE_MAGIC,
    _U32,
    PathLike,
    _checksummed_lengths,
    _mask,
    _shard_path,
    _WIRE_BYTES,
    _WIRE_FIXED32,
    _WIRE_VARINT,
)
from astromer_hf.convert.tf_bundle import crc32c as crc32c_table_loop

__all__ = ["crc32c", "crc32c_vectorised", "crc32c_table_loop", "write_tensor_bundle", "build_table", "encode_entry",
           "field_varint", "field_bytes"]

# --------------------------------------------------------------------------------------------------------
# CRC32C, lane-parallel with NumPy
# --------------------------------------------------------------------------------------------------------

_CRC_TABLE_NP = np.array(_CRC_TABLE, dtype=np.uint32)
# Inputs at least this long go through the vectorised CRC; each of its lanes covers _LANE_BYTES bytes.
_VECTOR_MIN_BYTES = 1 << 14
_LANE_BYTES = 128
_UNIT_VECTORS = np.left_shift(np.uint32(1), np.arange(32, dtype=np.uint32))

def _apply_linear_map(tables: np.ndarray, words: np.ndarray) -> np.ndarray:
    """Apply a GF(2)-linear map on 32-bit words, given as 4 lookup tables (one per input byte), to ``words``."""
    return (
        tables[0][words & 0xFF]
        ^ tables[1][(words >> 8) & 0xFF]
        ^ tables[2][(words >> 16) & 0xFF]
        ^ tables[3][words >> 24]
    )


@lru_cache(maxsize=None)
def _zero_bytes_map(log2_count: int) -> np.ndarray:
    """Lookup tables of the map "feed ``2**log2_count`` zero bytes" acting on a raw CRC32C register."""
    if log2_count == 0:
        images = _CRC_TABLE_NP[_UNIT_VECTORS & 0xFF] ^ (_UNIT_VECTORS >> 8)
    else:
        half = _zero_bytes_map(log2_count - 1)
        images = _apply_linear_map(half, _apply_linear_map(half, _UNIT_VECTORS))
    # Entry x of table k is the XOR of the images of the bits set in byte k of the input word.
    bits = (np.arange(256)[:, None] >> np.arange(8)) & 1  # (256, 8)
    tables = np.zeros((4, 256), dtype=np.uint32)
    for k in range(4):
        for j in range(8):
            tables[k, bits[:, j] == 1] ^= images[8 * k + j]
    tables.flags.writeable = False
    return tables


def crc32c_vectorised(data: np.ndarray) -> int:
    """CRC32C of a uint8 array of at least 4 bytes, computed lane-parallel with NumPy.

    Without its initial value and final inversion, the CRC register update is linear over GF(2) in the
    (register, data) pair, so: (1) the initial value 0xFFFFFFFF is equivalent to a zero register with the
    first 4 data bytes inverted; (2) leading zero bytes do not change a zero register, so the data can be
    left-padded to ``lanes * _LANE_BYTES`` bytes; (3) the register of a concatenation ``A + B`` is
    ``Z_len(B)(reg(A)) ^ reg(B)``, with ``Z_n`` the linear "feed n zero bytes" map. The lanes are run side
    by side with the table loop, then merged pairwise in a tree, each level doubling the lane length.
    """
    size = data.size
    lanes = 1 << (-(-size // _LANE_BYTES) - 1).bit_length()
    padded = np.zeros(lanes * _LANE_BYTES, dtype=np.uint8)
    start = padded.size - size
    padded[start:] = data
    padded[start : start + 4] ^= 0xFF
    columns = np.ascontiguousarray(padded.reshape(lanes, _LANE_BYTES).T)
    state = np.zeros(lanes, dtype=np.uint32)
    for column in columns:
        state = _CRC_TABLE_NP[(state ^ column) & 0xFF] ^ (state >> 8)
    log2_lane = _LANE_BYTES.bit_length() - 1
    while state.size > 1:
        state = _apply_linear_map(_zero_bytes_map(log2_lane), state[0::2]) ^ state[1::2]
        log2_lane += 1
    return int(state[0]) ^ _U32



def crc32c(data: bytes | bytearray | memoryview | np.ndarray) -> int:
    """Unmasked CRC32C (Castagnoli) of ``data``; ``crc32c(b"123456789") == 0xE3069283``.

    Inputs of 16 KiB or more (tensor payloads) use a NumPy lane-parallel algorithm, smaller ones (table
    blocks, protos) the plain table loop; both give the same value.
    """
    if isinstance(data, np.ndarray):
        data = memoryview(np.ascontiguousarray(data).reshape(-1).view(np.uint8))
    else:
        data = memoryview(data).cast("B")
    if len(data) < _VECTOR_MIN_BYTES:
        return crc32c_table_loop(data)
    return crc32c_vectorised(np.frombuffer(data, dtype=np.uint8))


# --------------------------------------------------------------------------------------------------------
# Protobuf wire format and the bundle writer
# --------------------------------------------------------------------------------------------------------

# Keyed by kind + itemsize so that any byte order of a NumPy dtype finds its enum value.
DTYPE_ENUM = {f"{dt.kind}{dt.itemsize}": enum for enum, dt in _NUMERIC_DTYPES.items()}


def _encode_varint(value: int) -> bytes:
    if value < 0:  # negative int32/int64 fields are sent as 64-bit two's complement
        value += 1 << 64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)



def field_varint(number: int, value: int) -> bytes:
    return _encode_varint(number << 3 | _WIRE_VARINT) + _encode_varint(value)


def field_bytes(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | _WIRE_BYTES) + _encode_varint(len(payload)) + payload


def field_fixed32(number: int, value: int) -> bytes:
    return _encode_varint(number << 3 | _WIRE_FIXED32) + struct.pack("<I", value)


_BLOCK_SIZE = 4096  # LevelDB's default target size of a data block
_RESTART_INTERVAL = 16


class _BlockBuilder:
    """Accumulates sorted key/value entries into one table block with prefix-compressed keys."""

    def __init__(self, restart_interval: int) -> None:
        self._restart_interval = restart_interval
        self._buffer = bytearray()
        self._restarts = [0]
        self._since_restart = 0
        self._last_key = b""

    @property
    def empty(self) -> bool:
        return not self._buffer

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self._since_restart < self._restart_interval:
            limit = min(len(key), len(self._last_key))
            while shared < limit and key[shared] == self._last_key[shared]:
                shared += 1
        else:
            self._restarts.append(len(self._buffer))
            self._since_restart = 0
        self._buffer += _encode_varint(shared) + _encode_varint(len(key) - shared) + _encode_varint(len(value))
        self._buffer += key[shared:] + value
        self._last_key = key
        self._since_restart += 1

    def estimated_size(self) -> int:
        return len(self._buffer) + 4 * len(self._restarts) + 4

    def finish(self) -> bytes:
        return bytes(self._buffer) + struct.pack(f"<{len(self._restarts) + 1}I", *self._restarts, len(self._restarts))


def _shortest_separator(start: bytes, limit: bytes) -> bytes:
    """A short key ``k`` with ``start <= k < limit`` (LevelDB's bytewise FindShortestSeparator)."""
    common = 0
    while common < min(len(start), len(limit)) and start[common] == limit[common]:
        common += 1
    if common < min(len(start), len(limit)):
        byte = start[common]
        if byte < 0xFF and byte + 1 < limit[common]:
            return start[:common] + bytes([byte + 1])
    return start


def _short_successor(key: bytes) -> bytes:
    """A short key not smaller than ``key`` (LevelDB's bytewise FindShortSuccessor)."""
    for i, byte in enumerate(key):
        if byte != 0xFF:
            return key[:i] + bytes([byte + 1])
    return key


def build_table(items: list[tuple[bytes, bytes]]) -> bytes:
    """Serialize sorted key/value pairs as a LevelDB-format table with uncompressed blocks."""
    out = bytearray()

    def write_block(contents: bytes) -> bytes:
        handle = _encode_varint(len(out)) + _encode_varint(len(contents))
        trailer_type = bytes([_BLOCK_TYPE_NONE])
        out.extend(contents + trailer_type + struct.pack("<I", _mask(crc32c(contents + trailer_type))))
        return handle

    data_block = _BlockBuilder(_RESTART_INTERVAL)
    index_block = _BlockBuilder(1)
    pending_handle: bytes | None = None
    last_key = b""
    for key, value in items:
        if pending_handle is not None:
            index_block.add(_shortest_separator(last_key, key), pending_handle)
            pending_handle = None
        data_block.add(key, value)
        last_key = key
        if data_block.estimated_size() >= _BLOCK_SIZE:
            pending_handle = write_block(data_block.finish())
            data_block = _BlockBuilder(_RESTART_INTERVAL)
    if not data_block.empty:
        pending_handle = write_block(data_block.finish())
    if pending_handle is not None:
        index_block.add(_short_successor(last_key), pending_handle)
    metaindex_handle = write_block(_BlockBuilder(_RESTART_INTERVAL).finish())
    index_handle = write_block(index_block.finish())
    out += (metaindex_handle + index_handle).ljust(_HANDLES_SIZE, b"\0") + struct.pack("<Q", _TABLE_MAGIC)
    return bytes(out)


def _encode_strings(name: str, array: np.ndarray) -> tuple[bytes, int]:
    """DT_STRING payload of ``array`` and its masked entry checksum (see :func:`_decode_strings`)."""
    strings = []
    for item in array.reshape(-1):
        if not isinstance(item, bytes):
            raise TypeError(f"string tensor {name!r} must hold bytes, got {type(item).__name__}")
        strings.append(bytes(item))
    lengths = [len(s) for s in strings]
    fixed_lengths = _checksummed_lengths(lengths)
    length_crc = struct.pack("<I", _mask(crc32c(fixed_lengths)))
    joined = b"".join(strings)
    payload = b"".join(_encode_varint(n) for n in lengths) + length_crc + joined
    return payload, _mask(crc32c(fixed_lengths + length_crc + joined))


def _encode_tensor(name: str, value: np.ndarray) -> tuple[int, bytes, int]:
    """``(DataType enum, payload bytes, masked checksum)`` of one tensor."""
    array = np.asarray(value)
    if array.dtype.kind in "SO":
        return (_DT_STRING, *_encode_strings(name, array))
    enum = DTYPE_ENUM.get(f"{array.dtype.kind}{array.dtype.itemsize}")
    if enum is None:
        raise TypeError(f"tensor {name!r}: dtype {array.dtype} has no TensorFlow DataType equivalent")
    payload = np.ascontiguousarray(array, dtype=_NUMERIC_DTYPES[enum]).tobytes()
    return enum, payload, _mask(crc32c(payload))


def encode_entry(dtype_enum: int, shape: tuple[int, ...], offset: int, size: int, masked_crc: int) -> bytes:
    """Serialize a ``BundleEntryProto`` as proto3 does (fields in order, zero scalars omitted)."""
    dims = b"".join(field_bytes(2, field_varint(1, d) if d else b"") for d in shape)
    entry = field_varint(1, dtype_enum) + field_bytes(2, dims)
    if offset:
        entry += field_varint(4, offset)
    if size:
        entry += field_varint(5, size)
    if masked_crc:
        entry += field_fixed32(6, masked_crc)
    return entry


def write_tensor_bundle(prefix: PathLike, tensors: Mapping[str, np.ndarray]) -> None:
    """Write ``tensors`` as a single-shard TensorFlow tensor bundle ``PREFIX.index`` + ``PREFIX.data-00000-of-00001``.

    The output follows the format as TensorFlow's ``BundleWriter`` produces it: tensor bytes in the order of
    ``tensors``, index entries sorted by key after the header (1 shard, little endian, format version 1),
    uncompressed table blocks of about 4 KiB with a restart point every 16 keys, masked CRC32C per block and
    per tensor. Numeric arrays of any NumPy dtype that TensorFlow has are written as little-endian raw
    bytes; arrays of ``bytes`` (dtype ``S`` or ``object``) become DT_STRING tensors.
    """
    prefix = Path(prefix)
    if "" in tensors:
        raise ValueError("the empty key is reserved for the bundle header")
    header = field_varint(1, 1) + field_bytes(3, field_varint(1, _BUNDLE_VERSION))
    items = [(b"", header)]
    entries = {}
    offset = 0
    with _shard_path(prefix, 0, 1).open("wb") as data_file:
        for name, value in tensors.items():
            dtype_enum, payload, masked_crc = _encode_tensor(name, value)
            data_file.write(payload)
            shape = tuple(int(d) for d in np.shape(value))
            entries[name.encode("utf-8")] = encode_entry(dtype_enum, shape, offset, len(payload), masked_crc)
            offset += len(payload)
    items.extend(sorted(entries.items()))
    prefix.with_name(prefix.name + ".index").write_bytes(build_table(items))
