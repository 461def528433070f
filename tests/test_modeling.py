"""Astromer modeling on tiny configurations: shapes, masks, losses, heads, saving and Auto classes."""

import math

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForPreTraining, AutoModelForSequenceClassification

from astromer_hf import (
    AstromerConfig,
    AstromerForLightCurveClassification,
    AstromerForMaskedReconstruction,
    AstromerModel,
)
from astromer_hf.modeling_astromer import (
    build_attention_bias,
    inverse_error_weights,
    masked_r2,
    masked_rmse,
    sinusoidal_time_encoding,
)

B, T = 3, 12
STYLES = [
    dict(residual_style="none", attention_mask_style="additive_one", use_mask_token=False),
    dict(residual_style="projected", attention_mask_style="key", use_mask_token=True),
    dict(residual_style="identity", attention_mask_style="key", use_mask_token=False),
]


def tiny_config(**overrides) -> AstromerConfig:
    values = dict(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=24,
        window_size=T,
        classifier_hidden_sizes=[32, 16],
        num_labels=3,
    )
    return AstromerConfig(**{**values, **overrides})


def make_batch(seed: int = 0, lengths=(T, 7, 4)):
    generator = torch.Generator().manual_seed(seed)
    magnitudes = torch.randn(B, T, generator=generator)
    times = torch.cumsum(torch.rand(B, T, generator=generator) * 3, dim=1)
    times = times - times.mean(dim=1, keepdim=True)
    attention_mask = (torch.arange(T)[None] < torch.tensor(lengths)[:, None]).long()
    magnitudes, times = magnitudes * attention_mask, times * attention_mask
    masked = ((torch.rand(B, T, generator=generator) < 0.4).long() * attention_mask)
    masked[:, 0] = 1  # every row has at least one hidden observation
    return dict(magnitudes=magnitudes, times=times, attention_mask=attention_mask, masked_positions=masked)


@pytest.mark.parametrize("style", STYLES, ids=lambda s: s["residual_style"])
def test_forward_shapes_of_every_class(style):
    config = tiny_config(**style)
    batch = make_batch()
    torch.manual_seed(0)
    base = AstromerModel(config).eval()
    out = base(**batch, output_hidden_states=True, output_attentions=True)
    assert out.last_hidden_state.shape == (B, T, 16)
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    assert all(h.shape == (B, T, 16) for h in out.hidden_states)
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (B, 2, T, T)
    assert torch.allclose(out.attentions[0].sum(-1), torch.ones(B, 2, T), atol=1e-5)

    recon = AstromerForMaskedReconstruction(config).eval()
    out = recon(**batch, labels=batch["magnitudes"])
    assert out.reconstruction.shape == (B, T)
    assert out.loss.shape == () and out.r2.shape == ()

    clf = AstromerForLightCurveClassification(config).eval()
    batch.pop("masked_positions")
    out = clf(**batch, labels=torch.tensor([0, 2, 1]))
    assert out.logits.shape == (B, 3) and out.pooled_output.shape == (B, 16) and out.loss.shape == ()


def test_inputs_in_the_original_b_t_1_layout_are_accepted():
    model = AstromerModel(tiny_config()).eval()
    batch = make_batch()
    flat = model(**batch).last_hidden_state
    channel = model(**{k: v.unsqueeze(-1) for k, v in batch.items()}).last_hidden_state
    assert torch.equal(flat, channel)


def test_return_dict_false_gives_a_tuple():
    model = AstromerForMaskedReconstruction(tiny_config()).eval()
    batch = make_batch()
    as_tuple = model(**batch, labels=batch["magnitudes"], return_dict=False)
    assert isinstance(as_tuple, tuple)
    as_dict = model(**batch, labels=batch["magnitudes"])
    assert torch.equal(as_tuple[0], as_dict.loss) and torch.equal(as_tuple[2], as_dict.reconstruction)


def test_time_encoding_follows_the_astromer_formula():
    times = torch.tensor([[0.0, 1.5, -20.25, 1234.5]], dtype=torch.float64)
    encoding = sinusoidal_time_encoding(times, 8, base=10000.0)
    assert encoding.shape == (1, 4, 8) and encoding.dtype == torch.float64
    for i in range(8):
        omega = 10000.0 ** (-2.0 * i / 8)  # every channel has its own frequency (i, not 2*floor(i/2))
        expected = np.sin(times.numpy() * omega) if i % 2 == 0 else np.cos(times.numpy() * omega)
        np.testing.assert_allclose(encoding[..., i].numpy(), expected, rtol=0, atol=1e-12)
    assert sinusoidal_time_encoding(times.float(), 8).dtype == torch.float32


def test_time_encoding_base_is_honoured():
    config = tiny_config(time_encoding_base=1000.0, hidden_dropout_prob=0.0)
    batch = make_batch()
    torch.manual_seed(0)
    a = AstromerModel(config).eval()
    torch.manual_seed(0)
    b = AstromerModel(tiny_config(hidden_dropout_prob=0.0)).eval()
    assert not torch.allclose(a(**batch).last_hidden_state, b(**batch).last_hidden_state)


def test_time_encoding_max_frequency_speeds_up_every_channel():
    """A model pretrained with a faster encoding sees time t as the released encoding sees t * max_frequency."""
    times = torch.tensor([[0.0, 0.3, -20.25, 412.7]], dtype=torch.float64)
    fast = sinusoidal_time_encoding(times, 8, base=10000.0, max_frequency=2 * np.pi / 0.1)
    np.testing.assert_allclose(fast.numpy(), sinusoidal_time_encoding(times * (2 * np.pi / 0.1), 8).numpy(),
                               rtol=0, atol=1e-9)
    # the fastest channel (0: sine) turns once every 0.1 days
    np.testing.assert_allclose(fast[0, :, 0].numpy(), np.sin(times[0].numpy() * 2 * np.pi / 0.1), atol=1e-9)

    batch = make_batch()
    torch.manual_seed(0)
    released = AstromerModel(tiny_config(hidden_dropout_prob=0.0)).eval()
    torch.manual_seed(0)
    faster = AstromerModel(tiny_config(hidden_dropout_prob=0.0, time_encoding_max_frequency=10.0)).eval()
    scaled = {**batch, "times": batch["times"] * 10.0}
    torch.testing.assert_close(faster(**batch).last_hidden_state, released(**scaled).last_hidden_state)
    assert not torch.allclose(faster(**batch).last_hidden_state, released(**batch).last_hidden_state)


def test_time_encoding_max_frequency_survives_save_and_load(tmp_path):
    model = AstromerModel(tiny_config(time_encoding_max_frequency=62.5)).eval()
    model.save_pretrained(tmp_path)
    loaded = AstromerModel.from_pretrained(tmp_path).eval()
    assert loaded.config.time_encoding_max_frequency == 62.5
    batch = make_batch()
    torch.testing.assert_close(loaded(**batch).last_hidden_state, model(**batch).last_hidden_state)


def test_attention_bias_styles():
    hidden = torch.tensor([[False, True, False]])
    plus_one = build_attention_bias(hidden, "additive_one", torch.float32)
    expected = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    assert plus_one.shape == (1, 1, 3, 3) and torch.equal(plus_one[0, 0], expected)
    key = build_attention_bias(hidden, "key", torch.float32)
    assert key.shape == (1, 1, 1, 3) and torch.equal(key[0, 0, 0], torch.tensor([0.0, -1e9, 0.0]))
    assert build_attention_bias(hidden, "key", torch.float16)[0, 0, 0, 1] == torch.finfo(torch.float16).min


@pytest.mark.parametrize("hidden_size", [16, 18], ids=["width16", "width18"])
@pytest.mark.parametrize("style", STYLES, ids=lambda s: s["residual_style"])
def test_eager_and_sdpa_attention_agree(style, hidden_size):
    """Same outputs and gradients; width 18 (heads of 9) makes the SDPA path's fused projection pad its columns to a
    multiple of 16 on the CPU in every style (54 + 18 = 72 columns with Astromer 2's Linear(x) residual)."""
    config = tiny_config(**style, hidden_size=hidden_size)
    torch.manual_seed(0)
    model = AstromerForMaskedReconstruction(config).eval()
    batch = make_batch()
    outputs, gradients = {}, {}
    for implementation in ("eager", "sdpa"):
        model.set_attn_implementation(implementation)
        model.zero_grad()
        outputs[implementation] = model(**batch, output_hidden_states=True)
        outputs[implementation].reconstruction.square().sum().backward()
        gradients[implementation] = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    eager, sdpa = outputs["eager"], outputs["sdpa"]
    for a, b in zip(eager.hidden_states, sdpa.hidden_states):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(eager.reconstruction, sdpa.reconstruction, atol=1e-5, rtol=0)
    assert gradients["eager"].keys() == gradients["sdpa"].keys() and gradients["eager"]
    for name, grad in gradients["eager"].items():
        torch.testing.assert_close(grad, gradients["sdpa"][name], atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_key_mask_makes_a_padded_row_equal_the_row_alone(implementation):
    config = tiny_config(**STYLES[1], hidden_dropout_prob=0.0)
    torch.manual_seed(0)
    model = AstromerForMaskedReconstruction(config).eval()
    model.set_attn_implementation(implementation)
    batch = make_batch()
    n = 7  # row 1 has 7 real observations and 5 padded ones
    padded = model(**batch, output_hidden_states=True)
    alone = model(**{k: v[1:2, :n] for k, v in batch.items()}, output_hidden_states=True)
    for a, b in zip(padded.hidden_states, alone.hidden_states):
        torch.testing.assert_close(a[1, :n], b[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(padded.reconstruction[1, :n], alone.reconstruction[0], atol=1e-5, rtol=0)


def test_astromer1_plus_one_mask_lets_padding_change_real_positions():
    # The released Astromer 1 adds +1 to hidden/padded keys: padding is attended, so a padded row differs from the
    # row alone. This is the behaviour the released weights were trained with (spec section 10.3).
    config = tiny_config(**STYLES[0], hidden_dropout_prob=0.0)
    torch.manual_seed(0)
    model = AstromerModel(config).eval()
    batch = make_batch()
    padded = model(**batch).last_hidden_state[1, :7]
    alone = model(**{k: v[1:2, :7] for k, v in batch.items()}).last_hidden_state[0]
    assert (padded - alone).abs().max() > 1e-3


def test_mask_token_replaces_hidden_magnitudes():
    config = tiny_config(**STYLES[1], hidden_dropout_prob=0.0)
    torch.manual_seed(0)
    model = AstromerModel(config).eval()
    batch = make_batch()
    changed = dict(batch, magnitudes=batch["magnitudes"] + 5.0 * batch["masked_positions"])
    first = model(**batch, output_hidden_states=True).hidden_states[0]
    second = model(**changed, output_hidden_states=True).hidden_states[0]
    assert torch.equal(first, second)  # hidden values never reach the model
    with torch.no_grad():
        model.embeddings.mask_token.fill_(3.0)
    third = model(**batch, output_hidden_states=True).hidden_states[0]
    hidden = batch["masked_positions"].bool() | (batch["attention_mask"] == 0)  # padding takes the token too
    assert not torch.allclose(first[hidden], third[hidden]) and torch.equal(first[~hidden], third[~hidden])


def test_without_mask_token_hidden_values_stay_in_the_input():
    # Astromer 1 has no [MASK] token: a hidden position keeps its magnitude in the input embedding.
    model = AstromerModel(tiny_config(**STYLES[0])).eval()
    batch = make_batch()
    changed = dict(batch, magnitudes=batch["magnitudes"] + 5.0 * batch["masked_positions"])
    assert not torch.equal(
        model(**batch, output_hidden_states=True).hidden_states[0],
        model(**changed, output_hidden_states=True).hidden_states[0],
    )


@pytest.mark.parametrize("style", STYLES, ids=lambda s: s["residual_style"])
@pytest.mark.parametrize("head", ["reconstruction", "classification"])
def test_gradients_reach_every_parameter(style, head):
    config = tiny_config(**style)
    batch = make_batch()
    torch.manual_seed(0)
    if head == "reconstruction":
        model = AstromerForMaskedReconstruction(config).train()
        loss = model(**batch, labels=batch["magnitudes"] + 0.1).loss
    else:
        model = AstromerForLightCurveClassification(config).train()
        batch.pop("masked_positions")
        loss = model(**batch, labels=torch.tensor([0, 1, 2])).loss
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    if head == "classification":  # the [MASK] token only acts on hidden positions, which classification has none of
        missing = [name for name in missing if not name.endswith("mask_token")]
    assert missing == []


def test_eval_is_deterministic_and_train_applies_dropout():
    model = AstromerModel(tiny_config(hidden_dropout_prob=0.3))
    batch = make_batch()
    model.eval()
    assert torch.equal(model(**batch).last_hidden_state, model(**batch).last_hidden_state)
    model.train()
    assert not torch.equal(model(**batch).last_hidden_state, model(**batch).last_hidden_state)


def test_masked_rmse_matches_the_original_formula():
    rng = np.random.default_rng(0)
    y, yhat = rng.normal(size=(4, 9)), rng.normal(size=(4, 9))
    mask = (rng.uniform(size=(4, 9)) < 0.5).astype(float)
    mask[:, 0] = 1
    weights = rng.uniform(0.5, 2.0, size=(4, 9))
    per_window = (mask * weights * (y - yhat) ** 2).sum(1) / mask.sum(1)  # denominator is not weighted
    expected = math.sqrt(per_window.mean())
    got = masked_rmse(*(torch.from_numpy(a) for a in (yhat, y, mask, weights)))
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_masked_rmse_leaves_out_windows_without_probed_positions():
    y, yhat = torch.ones(2, 3), torch.zeros(2, 3)
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    assert masked_rmse(yhat, y, mask).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="No position enters the loss"):
        masked_rmse(yhat, y, torch.zeros(2, 3))


def test_masked_r2_matches_the_original_formula():
    rng = np.random.default_rng(1)
    y, yhat = rng.normal(size=(3, 8)), rng.normal(size=(3, 8))
    mask = (rng.uniform(size=(3, 8)) < 0.6).astype(float)
    mask[:, :2] = 1
    mean = (y * mask).sum(1, keepdims=True) / mask.sum(1, keepdims=True)
    expected = 1 - (mask * (y - yhat) ** 2).sum() / (mask * (y - mean) ** 2).sum()
    got = masked_r2(torch.from_numpy(yhat), torch.from_numpy(y), torch.from_numpy(mask))
    assert got.item() == pytest.approx(expected, rel=1e-12)
    assert masked_r2(torch.from_numpy(y), torch.from_numpy(y), torch.from_numpy(mask)).item() == 1.0


def test_inverse_error_weights_are_min_max_scaled_per_window():
    errors = torch.tensor([[0.1, 0.2, 0.4, 0.0], [0.05, 0.05, 0.5, 0.3]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    weights = inverse_error_weights(errors, mask)
    inverse = 1 / np.array([0.1, 0.2, 0.4])
    expected = (inverse - inverse.min()) / (inverse.max() - inverse.min()) + 1e-3
    np.testing.assert_allclose(weights[0, :3].numpy(), expected, rtol=1e-12)
    assert weights[0, 3] == 0
    assert weights[1].max().item() == pytest.approx(1.001) and weights[1].min().item() == pytest.approx(1e-3)


def test_inverse_error_loss_weighting_changes_the_loss_and_needs_errors():
    batch = make_batch()
    torch.manual_seed(0)
    plain = AstromerForMaskedReconstruction(tiny_config(hidden_dropout_prob=0.0)).eval()
    torch.manual_seed(0)
    weighted = AstromerForMaskedReconstruction(tiny_config(hidden_dropout_prob=0.0, loss_weighting="inverse_error"))
    weighted.eval()
    errors = (torch.rand(B, T) * 0.1 + 0.01) * batch["attention_mask"]
    a = plain(**batch, labels=batch["magnitudes"] + 0.3).loss
    b = weighted(**batch, labels=batch["magnitudes"] + 0.3, errors=errors).loss
    assert not torch.isclose(a, b)
    with pytest.raises(ValueError, match="`errors` are required"):
        weighted(**batch, labels=batch["magnitudes"])


def test_loss_covers_probed_positions_only():
    torch.manual_seed(0)
    model = AstromerForMaskedReconstruction(tiny_config()).eval()
    batch = make_batch()
    probed = batch["masked_positions"]
    out = model(**batch, labels=batch["magnitudes"], probed_positions=probed)
    labels = batch["magnitudes"].clone()
    labels[probed == 0] += 100.0  # outside the probed set the labels must not matter
    assert torch.allclose(model(**batch, labels=labels, probed_positions=probed).loss, out.loss)
    expected = masked_rmse(out.reconstruction, batch["magnitudes"], probed.bool() & batch["attention_mask"].bool())
    assert torch.allclose(out.loss, expected)


@pytest.mark.parametrize("pooling", ["mean", "max", "skip"])
def test_classifier_pooling_ignores_padding(pooling):
    config = tiny_config(classifier_pooling=pooling, hidden_dropout_prob=0.0, **STYLES[1])
    torch.manual_seed(0)
    model = AstromerForLightCurveClassification(config).eval()
    batch = make_batch()
    batch.pop("masked_positions")
    garbage = dict(batch, magnitudes=batch["magnitudes"] + 50.0 * (1 - batch["attention_mask"]))
    torch.testing.assert_close(model(**batch).logits, model(**garbage).logits, atol=1e-5, rtol=0)


def test_skip_pooling_is_the_gamma_weighted_mean_of_every_layer():
    config = tiny_config(classifier_pooling="skip", hidden_dropout_prob=0.0)
    torch.manual_seed(0)
    model = AstromerForLightCurveClassification(config).eval()
    assert torch.allclose(model.layer_weights, torch.full((3,), 1 / 3))
    with torch.no_grad():
        model.layer_weights.copy_(torch.tensor([0.2, -1.0, 0.7]))
    batch = make_batch()
    batch.pop("masked_positions")
    out = model(**batch, output_hidden_states=True)
    mask = batch["attention_mask"].unsqueeze(-1).float()
    means = torch.stack([(h * mask).sum(1) / mask.sum(1) for h in out.hidden_states])
    gamma = torch.softmax(model.layer_weights, 0)
    torch.testing.assert_close(out.pooled_output, (gamma[:, None, None] * means).mean(0))


def test_classifier_head_layout_and_freezing():
    config = tiny_config(freeze_encoder=True)
    model = AstromerForLightCurveClassification(config)
    layers = [type(m).__name__ for m in model.classifier]
    assert layers == ["Linear", "ReLU", "Linear", "ReLU", "LayerNorm", "Linear"]
    assert [m.out_features for m in model.classifier if isinstance(m, torch.nn.Linear)] == [32, 16, 3]
    assert not any(p.requires_grad for p in model.astromer.parameters())
    assert all(p.requires_grad for p in model.classifier.parameters()) and model.layer_weights.requires_grad
    model.freeze_encoder(False)
    assert all(p.requires_grad for p in model.astromer.parameters())


def test_bad_inputs_raise_clear_errors():
    model = AstromerForMaskedReconstruction(tiny_config())
    batch = make_batch()
    with pytest.raises(ValueError, match="`times` must have the shape of `magnitudes`"):
        model(batch["magnitudes"], batch["times"][:, :5])
    with pytest.raises(ValueError, match="`attention_mask` must have the shape"):
        model(**dict(batch, attention_mask=batch["attention_mask"][:2]))
    with pytest.raises(ValueError, match=r"`magnitudes` must have shape \(batch, window\)"):
        model(batch["magnitudes"][0], batch["times"][0])
    with pytest.raises(ValueError, match="`labels` must have the shape"):
        model(**batch, labels=batch["magnitudes"][:, :3])
    with pytest.raises(ValueError, match="floating-point"):
        model(batch["magnitudes"].long(), batch["times"])
    clf = AstromerForLightCurveClassification(tiny_config())
    batch.pop("masked_positions")
    with pytest.raises(ValueError, match=r"`labels` must lie in \[0, 3\)"):
        clf(**batch, labels=torch.tensor([0, 1, 3]))


@pytest.mark.parametrize("cls", [AstromerModel, AstromerForMaskedReconstruction, AstromerForLightCurveClassification])
def test_save_and_load_round_trip(tmp_path, cls):
    config = tiny_config(**STYLES[1])
    torch.manual_seed(0)
    model = cls(config).eval()
    batch = make_batch()
    if cls is AstromerForLightCurveClassification:
        batch.pop("masked_positions")
    model.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").is_file() and (tmp_path / "model.safetensors").is_file()
    loaded = cls.from_pretrained(tmp_path).eval()
    first, second = model(**batch), loaded(**batch)
    assert torch.equal(first[0], second[0])


def test_auto_classes_resolve_to_astromer(tmp_path):
    torch.manual_seed(0)
    pretraining = AstromerForMaskedReconstruction(tiny_config()).eval()
    pretraining.save_pretrained(tmp_path)
    encoder = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(encoder, AstromerModel)
    batch = make_batch()
    assert torch.equal(encoder(**batch).last_hidden_state, pretraining(**batch).last_hidden_state)
    assert isinstance(AutoModelForPreTraining.from_pretrained(tmp_path), AstromerForMaskedReconstruction)
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=4, freeze_encoder=True)
    assert isinstance(classifier, AstromerForLightCurveClassification)
    assert classifier.classifier[-1].out_features == 4
    assert torch.allclose(classifier.layer_weights, torch.full((3,), 1 / 3))  # new head initialised, not random
    assert not any(p.requires_grad for p in classifier.astromer.parameters())
    batch.pop("masked_positions")
    classifier(**batch, labels=torch.tensor([0, 1, 3])).loss.backward()
    assert all(p.grad is None for p in classifier.astromer.parameters())
    assert classifier.classifier[0].weight.grad is not None and classifier.layer_weights.grad is not None
    assert torch.equal(classifier.astromer.encoder.layers[0].intermediate.weight,
                       pretraining.astromer.encoder.layers[0].intermediate.weight)


def test_empty_batches_and_non_binary_attention_masks_are_refused_clearly():
    model = AstromerModel(tiny_config()).eval()
    for shape in ((0, 6), (2, 0)):
        with pytest.raises(ValueError, match="nothing to encode"):
            model(torch.zeros(shape), torch.zeros(shape))
    for value in (0.5, 2.0):
        with pytest.raises(ValueError, match="attention_mask` must be binary"):
            model(torch.zeros(2, 6), torch.zeros(2, 6), attention_mask=torch.full((2, 6), value))
