"""Counter-based random numbers: the same keys give the same numbers, whatever the batch, worker or process.

Training draws its random windows and masks from keys ``(seed, stream, epoch, item)`` instead of a stateful
generator. A window's start and mask then depend only on which curve it is, in which epoch, under which seed, so

* validation and test windows are masked identically in every run and every epoch (curves are comparable),
* a run resumed from a checkpoint sees exactly the data of an uninterrupted run,
* a DDP run sees exactly the windows and masks of a single-process run of the same global batch,
* the numbers are the same with 0 or 8 data-loader workers.

The hash is SplitMix64 (Steele, Lea & Flood 2014), applied to 64-bit unsigned integers in NumPy (which wraps on
overflow, as the hash needs).
"""

from __future__ import annotations

import numpy as np

#: Streams: one per use, so that different uses of one key never share numbers.
STREAM_WINDOW_START = 1
STREAM_MASK = 2
STREAM_DROPOUT = 3

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 2.0**-53


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser, element-wise on uint64 arrays."""
    x = (x ^ (x >> np.uint64(30))) * _MIX_1
    x = (x ^ (x >> np.uint64(27))) * _MIX_2
    return x ^ (x >> np.uint64(31))


def _absorb(state: np.ndarray, value: np.ndarray | int) -> np.ndarray:
    """Mix one more integer (or array of integers) into the running hash state."""
    return _splitmix64(state + (np.asarray(value).astype(np.uint64) + np.uint64(1)) * _GOLDEN)


def counter_keys(seed: int, stream: int, epoch: int | np.ndarray, items: np.ndarray) -> np.ndarray:
    """uint64 ``[B]``: one 64-bit key per item, from ``(seed, stream, epoch, item)``."""
    items = np.asarray(items, dtype=np.int64)
    with np.errstate(over="ignore"):
        state = _absorb(np.zeros(items.shape, dtype=np.uint64), seed)
        state = _absorb(state, stream)
        state = _absorb(state, epoch)
        return _absorb(state, items)


def counter_uniform(
    seed: int, stream: int, epoch: int | np.ndarray, items: np.ndarray, shape: tuple[int, ...] = ()
) -> np.ndarray:
    """float64 ``[B, *shape]`` uniforms in ``[0, 1)`` with 53 random bits, determined by the keys alone.

    Args:
        seed: the run's seed (non-negative).
        stream: what the numbers are for (``STREAM_*``).
        epoch: the epoch, an int or an int array ``[B]`` (one per item).
        items: int ``[B]``, which item (curve or window) each row belongs to.
        shape: numbers per item.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    keys = counter_keys(seed, stream, epoch, items)
    count = int(np.prod(shape, dtype=np.int64))
    with np.errstate(over="ignore"):
        cells = _absorb(keys[:, None], np.arange(count, dtype=np.uint64)[None, :])
    return ((cells >> np.uint64(11)).astype(np.float64) * _TO_UNIT).reshape(len(keys), *shape)


def derived_seed(seed: int, stream: int, *values: int) -> int:
    """A 63-bit seed for ``torch.manual_seed`` derived from ``seed``, a stream and further integers."""
    with np.errstate(over="ignore"):
        state = _absorb(np.zeros(1, dtype=np.uint64), seed)
        state = _absorb(state, stream)
        for value in values:
            state = _absorb(state, value)
    return int(state[0] >> np.uint64(1))
