"""The masking of spec §2.1 (astromer_hf.masking)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from astromer_hf.masking import mask_windows, masking_counts

RELEASED = (0.5, 0.2, 0.2)  # probed, random, same


def padded_batch(lengths: list[int], width: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random magnitudes [B, width] (distinct values, 0 at padding) and the right-padded attention mask."""
    generator = torch.Generator().manual_seed(seed)
    attention_mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    magnitudes = torch.randn(len(lengths), width, generator=generator) * attention_mask
    return magnitudes, attention_mask


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "n, fractions, expected",
    [
        (200, RELEASED, (100, 20, 16, 64)),
        (148, RELEASED, (74, 15, 12, 47)),
        (64, RELEASED, (32, 7, 5, 20)),
        (45, RELEASED, (22, 5, 4, 13)),
        (10, RELEASED, (5, 1, 1, 3)),
        (5, RELEASED, (2, 1, 1, 0)),
        (2, RELEASED, (1, 1, 0, 0)),
        (1, RELEASED, (0, 0, 0, 0)),
        (0, RELEASED, (0, 0, 0, 0)),
        (200, (0.2, 0.1, 0.1), (40, 4, 4, 32)),
        # float32 arithmetic, as TensorFlow: in float64 these give 62 probed and 15 same respectively.
        (90, (0.7, 0.3, 0.3), (63, 19, 14, 30)),
        (72, (0.7, 0.3, 0.3), (50, 16, 11, 23)),
        (200, (0.0, 0.2, 0.2), (0, 0, 0, 0)),
        (200, (1.0, 0.0, 0.0), (200, 0, 0, 200)),
        (200, (1.0, 1.0, 0.0), (200, 0, 200, 0)),
        (200, (1.0, 1.0, 1.0), (200, 200, 0, 0)),
    ],
)
def test_counts(n, fractions, expected):
    counts = masking_counts(torch.tensor([n]), *fractions)
    assert tuple(int(c) for c in counts) == expected


def test_counts_match_the_reference_masks(reference):
    n = torch.from_numpy(reference["win_length"].astype(np.int64))
    counts = masking_counts(n, *RELEASED)
    padding = 200 - reference["win_length"]
    np.testing.assert_array_equal(counts.probed.numpy(), reference["pt_mask_out"].sum(axis=1))
    np.testing.assert_array_equal(counts.masked.numpy(), reference["pt_mask_in"].sum(axis=1) - padding)
    changed = (reference["pt_input"] != reference["win_mag"]).sum(axis=1)
    assert (changed <= counts.random.numpy()).all()


def test_masks_of_reference_windows_have_the_reference_counts(reference):
    magnitudes = torch.from_numpy(reference["win_mag"])
    attention_mask = torch.from_numpy(1 - reference["win_mask_in"]).long()
    out = mask_windows(magnitudes, attention_mask, *RELEASED, generator=seeded(0))
    padding = 200 - reference["win_length"]
    np.testing.assert_array_equal(out.probed_positions.sum(1).numpy(), reference["pt_mask_out"].sum(axis=1))
    np.testing.assert_array_equal(out.masked_positions.sum(1).numpy(), reference["pt_mask_in"].sum(axis=1) - padding)
    assert sorted(set(reference["win_length"].tolist()) - {200}) == [45, 64, 148]


@pytest.mark.parametrize("fractions", [RELEASED, (0.2, 0.1, 0.1), (0.7, 0.3, 0.3), (1.0, 0.5, 0.0), (0.33, 0.0, 0.5)])
def test_sets_have_exact_sizes_and_respect_padding(fractions):
    lengths = [200, 199, 150, 64, 45, 17, 5, 2, 1, 0]
    magnitudes, attention_mask = padded_batch(lengths)
    out = mask_windows(magnitudes, attention_mask, *fractions, generator=seeded(1))
    counts = masking_counts(torch.tensor(lengths), *fractions)
    is_random = out.inputs != magnitudes
    same_or_random = out.probed_positions.bool() & ~out.masked_positions.bool()

    assert torch.equal(out.probed_positions.sum(1), counts.probed)
    assert torch.equal(out.masked_positions.sum(1), counts.masked)
    assert torch.equal(same_or_random.sum(1), counts.same + counts.random)
    assert (is_random.sum(1) <= counts.random).all()
    assert not (is_random & ~same_or_random).any()
    assert not (out.probed_positions.bool() & (attention_mask == 0)).any()
    assert not (out.masked_positions.bool() & ~out.probed_positions.bool()).any()
    assert torch.equal(out.labels, magnitudes)


def test_random_values_are_a_permutation_of_the_rows_own_values():
    lengths = [200, 120, 37]
    magnitudes, attention_mask = padded_batch(lengths, seed=2)
    out = mask_windows(magnitudes, attention_mask, 1.0, 1.0, 0.0, generator=seeded(3))
    assert out.masked_positions.sum() == 0
    for row, n in enumerate(lengths):
        substituted = out.inputs[row, :n]
        assert torch.equal(torch.sort(substituted).values, torch.sort(magnitudes[row, :n]).values)
        assert (substituted != magnitudes[row, :n]).float().mean() > 0.8


def test_positions_are_drawn_only_among_real_observations_wherever_the_padding_is():
    magnitudes = torch.arange(1.0, 13.0).repeat(3, 1)
    attention_mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0]] * 3)
    out = mask_windows(magnitudes, attention_mask, 1.0, 1.0, 0.0, generator=seeded(4))
    assert torch.equal(out.probed_positions, attention_mask)
    assert torch.equal(out.inputs[:, attention_mask[0] == 0], magnitudes[:, attention_mask[0] == 0])
    for row in out.inputs:
        assert sorted(row[3:11].tolist()) == list(range(4, 12))


def test_positions_are_uniform_over_real_observations():
    magnitudes, attention_mask = padded_batch([50] * 4000, width=60)
    out = mask_windows(magnitudes, attention_mask, *RELEASED, generator=seeded(5))
    rate = out.masked_positions[:, :50].float().mean(0)
    assert torch.allclose(rate, torch.full_like(rate, 16 / 50), atol=0.03)


def test_seeds_make_masks_reproducible():
    magnitudes, attention_mask = padded_batch([200, 150, 90])
    first = mask_windows(magnitudes, attention_mask, *RELEASED, generator=seeded(11))
    again = mask_windows(magnitudes, attention_mask, *RELEASED, generator=seeded(11))
    other = mask_windows(magnitudes, attention_mask, *RELEASED, generator=seeded(12))
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    assert not torch.equal(first.masked_positions, other.masked_positions)
    assert not torch.equal(first.inputs, other.inputs)


def test_dtype_and_device_are_preserved():
    magnitudes, attention_mask = padded_batch([200, 30])
    out = mask_windows(magnitudes.double(), attention_mask.bool(), *RELEASED, generator=seeded(0))
    assert out.inputs.dtype == torch.float64 and out.labels.dtype == torch.float64
    assert out.masked_positions.dtype == torch.int64 and out.probed_positions.dtype == torch.int64
    assert all(t.device == magnitudes.device for t in out)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inputs_with_a_cpu_generator_match_the_cpu_draw():
    magnitudes, attention_mask = padded_batch([200, 30])
    on_cpu = mask_windows(magnitudes.half(), attention_mask, *RELEASED, generator=seeded(9))
    on_gpu = mask_windows(magnitudes.half().cuda(), attention_mask.cuda(), *RELEASED, generator=seeded(9))
    for a, b in zip(on_cpu, on_gpu):
        assert b.is_cuda and b.dtype == a.dtype
        assert torch.equal(a, b.cpu())
    unseeded = mask_windows(magnitudes.cuda(), attention_mask.cuda(), *RELEASED)
    assert unseeded.inputs.is_cuda


@pytest.mark.parametrize(
    "name, value", [("probed", -0.1), ("random", 1.5), ("same", float("nan")), ("probed", "0.5"), ("same", True)]
)
def test_invalid_fractions_are_rejected(name, value):
    fractions = {"probed_fraction": 0.5, "random_fraction": 0.2, "same_fraction": 0.2, f"{name}_fraction": value}
    magnitudes, attention_mask = padded_batch([10])
    with pytest.raises(ValueError, match=f"{name}_fraction"):
        mask_windows(magnitudes, attention_mask, **fractions)


def test_invalid_inputs_are_rejected():
    magnitudes, attention_mask = padded_batch([10, 5])
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        mask_windows(magnitudes, attention_mask[:, :-1])
    with pytest.raises(ValueError, match="floating-point"):
        mask_windows(attention_mask, attention_mask)
    with pytest.raises(TypeError, match="generator"):
        mask_windows(magnitudes, attention_mask, generator=0)
