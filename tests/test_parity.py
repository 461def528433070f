"""Parity with the original TensorFlow Astromer 1 on 30 real light curves (120 windows).

The converted released checkpoint ``macho_a0`` is fed the stored windows and must reproduce the stored TensorFlow
outputs within the tolerances of the reference README: embeddings cosine >= 0.99999 at every real position and
max |diff| <= 5e-3, reconstructions max |diff| <= 1e-3, for no mask, the fixed odd-position mask and the stored
pretraining masks; the masked RMSE over the pretraining masks is 0.178763 +- 1e-4; the debug intermediates match
layer by layer. Skipped, with the reason, where ``../shared`` is absent.
"""

import numpy as np
import pytest
import torch

from astromer_hf import AstromerForMaskedReconstruction
from astromer_hf.convert.convert_tf_checkpoint import convert_tf_checkpoint
from astromer_hf.modeling_astromer import sinusoidal_time_encoding

COSINE_MIN, EMB_MAX_DIFF, RECON_MAX_DIFF = 0.99999, 5e-3, 1e-3


@pytest.fixture(scope="module")
def converted(reference_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted") / "astromer-1-macho"
    return convert_tf_checkpoint(reference_dir / "macho_a0.zip", out)


@pytest.fixture(scope="module", params=["eager", "sdpa"])
def model(converted, request):
    model = AstromerForMaskedReconstruction.from_pretrained(converted, attn_implementation=request.param)
    return model.eval()


def run(model, reference, magnitudes, mask_in, **kwargs):
    """Feed stored windows: the original's mask_in (1 = hidden or padding) becomes masked_positions, and padding
    (win_mask_in) becomes attention_mask = 0."""
    with torch.no_grad():
        return model(
            magnitudes=torch.from_numpy(reference[magnitudes]),
            times=torch.from_numpy(reference["win_times"]),
            attention_mask=torch.from_numpy(1 - reference["win_mask_in"]).long(),
            masked_positions=torch.from_numpy(reference[mask_in]).long(),
            **kwargs,
        )


def assert_embeddings_match(ours, theirs, lengths):
    real = np.arange(ours.shape[1])[None, :] < lengths[:, None]
    a, b = ours[real].astype(np.float64), theirs[real].astype(np.float64)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() >= COSINE_MIN, f"min cosine {cosine.min()}"
    assert np.abs(a - b).max() <= EMB_MAX_DIFF, f"max |diff| {np.abs(a - b).max()}"


@pytest.mark.parametrize(
    ("magnitudes", "mask_in", "emb_index", "emb", "recon"),
    [
        ("win_mag", "win_mask_in", "emb_idx", "emb", "recon_nomask"),
        ("win_mag", "mask_in_fixed", "sub_idx", "emb_fixedmask", "recon_fixedmask"),
        ("pt_input", "pt_mask_in", "sub_idx", "emb_ptmask", "recon_ptmask"),
    ],
    ids=["no-mask", "fixed-odd-mask", "pretraining-mask"],
)
def test_converted_macho_a0_reproduces_tensorflow(model, reference, magnitudes, mask_in, emb_index, emb, recon):
    out = run(model, reference, magnitudes, mask_in)
    index = reference[emb_index]
    assert_embeddings_match(out.last_hidden_state.numpy()[index], reference[emb], reference["win_length"][index])
    # every one of the 120 windows, every position (padding included, as the original computes it)
    assert np.abs(out.reconstruction.numpy() - reference[recon]).max() <= RECON_MAX_DIFF


def test_masked_rmse_over_the_stored_pretraining_masks(model, reference):
    out = run(
        model,
        reference,
        "pt_input",
        "pt_mask_in",
        labels=torch.from_numpy(reference["win_mag"]),
        probed_positions=torch.from_numpy(reference["pt_mask_out"]).long(),
    )
    assert out.loss.item() == pytest.approx(0.178763, abs=1e-4)
    assert out.loss.item() == pytest.approx(float(reference["pt_loss_all"]), abs=1e-5)


def test_loss_without_masks_matches(model, reference):
    out = run(
        model,
        reference,
        "win_mag",
        "win_mask_in",
        labels=torch.from_numpy(reference["win_mag"]),
        probed_positions=torch.from_numpy(reference["win_mask_out"]).long(),
    )
    assert out.loss.item() == pytest.approx(float(reference["nomask_loss"]), abs=1e-5)


def test_debug_intermediates_match_layer_by_layer(converted, reference):
    model = AstromerForMaskedReconstruction.from_pretrained(converted, attn_implementation="eager").eval()
    index = [0, 82]  # a full window and a 45-observation window with 155 padded positions
    times = torch.from_numpy(reference["win_times"][index])
    encoding = sinusoidal_time_encoding(times, 256).numpy()
    assert np.abs(encoding - reference["dbg_pe"]).max() <= 2e-4  # TF computed sin/cos of up to ~2000 rad in float32

    lengths = reference["win_length"][index]
    with torch.no_grad():
        out = model(
            magnitudes=torch.from_numpy(reference["win_mag"][index]),
            times=times,
            attention_mask=torch.from_numpy(1 - reference["win_mask_in"][index]).long(),
            output_hidden_states=True,
            output_attentions=True,
        )
        head_norm = model.head.norm(out.last_hidden_state)
    assert_embeddings_match(out.hidden_states[0].numpy(), reference["dbg_x0"], lengths)
    assert_embeddings_match(out.hidden_states[1].numpy(), reference["dbg_layer0_out"], lengths)
    assert_embeddings_match(out.hidden_states[2].numpy(), reference["emb"][[0, int(np.flatnonzero(reference["emb_idx"] == 82)[0])]], lengths)
    assert_embeddings_match(head_norm.numpy(), reference["dbg_head_ln"], lengths)
    # layer-0 attention of the padded window: the "+1" mask up-weights padded keys
    np.testing.assert_allclose(out.attentions[0][1:2].numpy(), reference["dbg_attn_w_layer0"], atol=1e-5, rtol=0)


def test_a_fixed_key_mask_would_break_parity(converted, reference):
    """Guards the A1 quirk: the released weights need the '+1' mask; the 'fixed' key mask changes padded windows."""
    model = AstromerForMaskedReconstruction.from_pretrained(converted).eval()
    model.config.attention_mask_style = "key"
    out = run(model, reference, "win_mag", "win_mask_in")
    padded = np.flatnonzero(reference["win_length"] < 200)
    index = [i for i, w in enumerate(reference["emb_idx"]) if w in padded]
    ours = out.last_hidden_state.numpy()[reference["emb_idx"][index]]
    theirs = reference["emb"][index]
    with pytest.raises(AssertionError, match="min cosine"):
        assert_embeddings_match(ours, theirs, reference["win_length"][reference["emb_idx"][index]])
