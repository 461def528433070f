"""Astromer's masked-reconstruction selection (``docs/architecture.md``, "Masked modelling"), vectorised over the batch in PyTorch.

For a window with ``n`` real observations and fractions ``probed``, ``same``, ``random``:

* ``n_probed = floor(n * probed)`` positions are *probed*: they count in the loss;
* ``n_same = ceil(n_probed * same)`` of them keep their true value and stay visible;
* ``n_random = ceil((n_probed - n_same) * random)`` of the rest are visible but carry the value found at the
  same index of a random permutation of the window's own real magnitudes;
* the remaining ``n_probed - n_same - n_random`` are *masked*: hidden from the model.

The counts are computed in float32, as TensorFlow did (the fractions are rounded to float32 and so is each
product). For the released fractions 0.5 / 0.2 / 0.2 float32 and exact arithmetic agree for every n up to
2000: a full 200-point window has 100 probed, 20 same, 16 random and 64 masked positions. Other fractions
can differ: with 0.7 / 0.3 / 0.3, n = 72 gives 16 "same" positions in float32 (15 exactly) and n = 90 gives
63 probed positions in float32 (62 in float64, where ``90 * 0.7 = 62.99999999999999``).

One deliberate difference: the PyPI package treats ``probed = 0`` as "probe everything" (``get_masked``
returns all ones for ``frac == 0``); here 0 means that nothing is probed. ``probed = 1, same = 1`` puts
every real observation in the loss and hides none.

Which positions fall in each set is drawn uniformly among the row's real observations: one random key per
position (padding gets ``+inf``), and a position's rank in the sorted keys decides its set (ranks below
``n_same`` are "same", the next ``n_random`` are "random", the next ones up to ``n_probed`` are masked).
Since the ranks of the real positions form a uniform random permutation, this draws the probed set, the
"same" subset and the "random" subset uniformly, as the original's successive draws did. The draws
themselves cannot match TensorFlow's, only the counts and distributions do.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch


class MaskCounts(NamedTuple):
    """Per-row sizes of the sets, int64 ``[B]`` each; ``probed = same + random + masked``."""

    probed: torch.Tensor
    same: torch.Tensor
    random: torch.Tensor
    masked: torch.Tensor


class MaskedWindows(NamedTuple):
    """Output of :func:`mask_windows`, all ``[B, T]`` on the device of the inputs.

    ``inputs``: the magnitudes after the "random" substitution (dtype of the input magnitudes).
    ``masked_positions``: int64, 1 where the value is hidden from the model. Padding is not marked here; it is
    expressed by the attention mask.
    ``probed_positions``: int64, 1 where the position counts in the loss (masked, random and same).
    ``labels``: the true magnitudes (a copy of the input magnitudes).
    """

    inputs: torch.Tensor
    masked_positions: torch.Tensor
    probed_positions: torch.Tensor
    labels: torch.Tensor


def validate_fraction(value: float, name: str) -> float:
    """Return ``value`` as a float after checking it is a real number in ``[0, 1]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def masking_counts(
    n_real: torch.Tensor, probed_fraction: float, random_fraction: float, same_fraction: float
) -> MaskCounts:
    """Set sizes for rows with ``n_real`` (int ``[B]``) real observations, in float32 arithmetic like TensorFlow."""
    probed = validate_fraction(probed_fraction, "probed_fraction")
    random = validate_fraction(random_fraction, "random_fraction")
    same = validate_fraction(same_fraction, "same_fraction")

    def as_float32(value: float) -> torch.Tensor:
        return torch.tensor(value, dtype=torch.float32, device=n_real.device)

    n_probed = torch.floor(n_real.to(torch.float32) * as_float32(probed))
    n_same = torch.ceil(n_probed * as_float32(same))
    n_random = torch.ceil((n_probed - n_same) * as_float32(random))
    n_probed, n_same, n_random = (count.to(torch.int64) for count in (n_probed, n_same, n_random))
    return MaskCounts(n_probed, n_same, n_random, n_probed - n_same - n_random)


def mask_windows(
    magnitudes: torch.Tensor,
    attention_mask: torch.Tensor,
    probed_fraction: float = 0.5,
    random_fraction: float = 0.2,
    same_fraction: float = 0.2,
    generator: torch.Generator | None = None,
    uniforms: torch.Tensor | None = None,
) -> MaskedWindows:
    """Choose probed / same / random / masked positions for every row and apply the random substitution.

    Args:
        magnitudes: float ``[B, T]``, the (centred) magnitudes.
        attention_mask: ``[B, T]``, non-zero at real observations, 0 at padding (padding may sit anywhere).
        probed_fraction, random_fraction, same_fraction: the masking fractions, each in ``[0, 1]``.
        generator: makes the draw reproducible. Random numbers are drawn on the generator's device and moved to
            the device of ``magnitudes``, so a CPU generator also serves inputs on an accelerator. Without it
            the global torch RNG of the inputs' device is used.
        uniforms: instead of drawing from a generator, use these ``[2, B, T]`` numbers in ``[0, 1)``: the first
            plane orders the positions (which sets each position falls in), the second the permutation of the
            "random" substitution. With counter-based uniforms (:func:`astromer_hf.training.seeding.counter_uniform`)
            a window's mask depends on its own key only, not on the batch it is drawn in.

    Returns:
        :class:`MaskedWindows`.
    """
    _check_inputs(magnitudes, attention_mask, generator)
    if uniforms is not None:
        if generator is not None:
            raise ValueError("pass either `generator` or `uniforms`, not both")
        if tuple(uniforms.shape) != (2, *magnitudes.shape):
            raise ValueError(f"uniforms must have shape {(2, *magnitudes.shape)}, got {tuple(uniforms.shape)}")
        uniforms = uniforms.to(magnitudes.device)
    is_real = attention_mask.to(device=magnitudes.device) != 0
    counts = masking_counts(is_real.sum(dim=1), probed_fraction, random_fraction, same_fraction)

    rank = _random_ranks(is_real, generator, None if uniforms is None else uniforms[0])
    same_end = counts.same[:, None]
    random_end = same_end + counts.random[:, None]
    is_random = (rank >= same_end) & (rank < random_end)
    is_masked = (rank >= random_end) & (rank < counts.probed[:, None])
    is_probed = rank < counts.probed[:, None]

    shuffled = _shuffle_real_values(magnitudes, is_real, generator, None if uniforms is None else uniforms[1])
    return MaskedWindows(
        inputs=torch.where(is_random, shuffled, magnitudes),
        masked_positions=is_masked.to(torch.int64),
        probed_positions=is_probed.to(torch.int64),
        labels=magnitudes.clone(),
    )


def _check_inputs(magnitudes: torch.Tensor, attention_mask: torch.Tensor, generator: torch.Generator | None) -> None:
    """Raise a clear error for inputs :func:`mask_windows` cannot use."""
    if not isinstance(magnitudes, torch.Tensor) or not isinstance(attention_mask, torch.Tensor):
        raise TypeError("magnitudes and attention_mask must be torch tensors")
    if magnitudes.ndim != 2 or magnitudes.shape != attention_mask.shape:
        raise ValueError(
            f"magnitudes and attention_mask must both be [B, T], got {tuple(magnitudes.shape)} and "
            f"{tuple(attention_mask.shape)}"
        )
    if not magnitudes.is_floating_point():
        raise ValueError(f"magnitudes must be a floating-point tensor, got {magnitudes.dtype}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def _random_keys(
    is_real: torch.Tensor, generator: torch.Generator | None, uniforms: torch.Tensor | None = None
) -> torch.Tensor:
    """``[B, T]``: uniform keys at real positions (``uniforms`` or fresh float32 draws), ``+inf`` at padding (so
    padding sorts last)."""
    if uniforms is None:
        device = generator.device if generator is not None else is_real.device
        uniforms = torch.rand(is_real.shape, generator=generator, device=device).to(is_real.device)
    return uniforms.masked_fill(~is_real, math.inf)


def _random_ranks(
    is_real: torch.Tensor, generator: torch.Generator | None, uniforms: torch.Tensor | None = None
) -> torch.Tensor:
    """int64 ``[B, T]``: a uniformly random order of each row's real positions (ranks ``0..n-1``); padding ``>= n``."""
    order = torch.argsort(_random_keys(is_real, generator, uniforms), dim=1)
    positions = torch.arange(is_real.shape[1], device=is_real.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, positions)


def _shuffle_real_values(
    magnitudes: torch.Tensor,
    is_real: torch.Tensor,
    generator: torch.Generator | None,
    uniforms: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[B, T]``: at the k-th real position of a row, the k-th value of a random permutation of the row's real values.

    Padding positions receive padding values (never used).
    """
    shuffled_sources = torch.argsort(_random_keys(is_real, generator, uniforms), dim=1)
    real_first = torch.argsort((~is_real).to(torch.int32), dim=1, stable=True)
    permutation = torch.empty_like(real_first).scatter_(1, real_first, shuffled_sources)
    return magnitudes.gather(1, permutation)
