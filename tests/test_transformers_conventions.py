"""The conventions transformers' own common model tests check, run over tiny Astromer 1- and Astromer 2-style
configurations: configuration round trips, save/load, outputs on request (from arguments and from the config),
tuple outputs, gradient checkpointing, eager vs SDPA attention, ``torch.export`` and ``torch.compile``,
initialisation of every weight, loading between the base model and its heads, problem types, loading reports,
and the Auto classes of the processor.

Written for this package after reading transformers' ``ModelTesterMixin`` / ``ConfigTester``; nothing is copied.
"""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
    AutoProcessor,
)

import astromer_hf  # noqa: F401  (registers the Auto classes)
from astromer_hf import (
    AstromerConfig,
    AstromerForLightCurveClassification,
    AstromerForMaskedReconstruction,
    AstromerModel,
    AstromerProcessor,
)

STYLES = {
    "astromer1": dict(residual_style="none", attention_mask_style="additive_one", use_mask_token=False,
                      num_hidden_layers=2),
    "astromer2": dict(residual_style="projected", attention_mask_style="key", use_mask_token=True,
                      num_hidden_layers=3),
}
HEADS = (AstromerModel, AstromerForMaskedReconstruction, AstromerForLightCurveClassification)
BATCH, LENGTH = 3, 12


def tiny(style: str, **overrides) -> AstromerConfig:
    settings = dict(hidden_size=16, num_attention_heads=2, intermediate_size=24, window_size=LENGTH,
                    classifier_hidden_sizes=[8], num_labels=4, hidden_dropout_prob=0.0)
    return AstromerConfig(**{**settings, **STYLES[style], **overrides})


def inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    attention_mask = torch.ones(BATCH, LENGTH, dtype=torch.long)
    attention_mask[1, 8:] = 0  # one padded window
    return {
        "magnitudes": torch.randn(BATCH, LENGTH, generator=generator),
        "times": torch.cumsum(torch.rand(BATCH, LENGTH, generator=generator) * 5, dim=1) - 30,
        "attention_mask": attention_mask,
    }


def main_output(output) -> torch.Tensor:
    return output.logits if hasattr(output, "logits") else (
        output.reconstruction if hasattr(output, "reconstruction") else output.last_hidden_state)


styles = pytest.mark.parametrize("style", sorted(STYLES))
heads = pytest.mark.parametrize("cls", HEADS, ids=[cls.__name__ for cls in HEADS])


# -- configuration ---------------------------------------------------------------------------------------------------


@styles
def test_config_round_trips_through_json_and_folders(style, tmp_path):
    config = tiny(style, problem_type="single_label_classification", initializer_range=0.02)
    config.save_pretrained(tmp_path)  # records the code's auto_map in the config too
    from_json = AstromerConfig.from_dict(json.loads(config.to_json_string()))
    for other in (from_json, AstromerConfig.from_pretrained(tmp_path), AutoConfig.from_pretrained(tmp_path)):
        assert isinstance(other, AstromerConfig)
        assert {**other.to_dict(), "_name_or_path": ""} == {**config.to_dict(), "_name_or_path": ""}


def test_config_common_properties_and_num_labels():
    config = tiny("astromer1")
    for name in ("hidden_size", "num_attention_heads", "num_hidden_layers"):
        assert getattr(config, name) > 0
    config.num_labels = 7
    assert len(config.id2label) == 7 and len(config.label2id) == 7
    with pytest.raises(Exception, match="initializer_range"):
        tiny("astromer1", initializer_range=-1.0)


# -- save / load, outputs ----------------------------------------------------------------------------------------


@styles
@heads
def test_save_and_load_give_identical_outputs(style, cls, tmp_path):
    torch.manual_seed(0)
    model = cls(tiny(style)).eval()
    model.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(main_output(loaded(**inputs())), main_output(model(**inputs())), rtol=0, atol=0)
    reloaded, info = cls.from_pretrained(tmp_path, output_loading_info=True)
    assert isinstance(reloaded, cls)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]


@styles
@heads
def test_hidden_states_and_attentions_from_arguments_and_from_the_config(style, cls):
    config = tiny(style)
    model = cls(config).eval()
    layers = config.num_hidden_layers
    with torch.no_grad():
        plain = model(**inputs())
        asked = model(**inputs(), output_hidden_states=True, output_attentions=True)
    assert plain.hidden_states is None and plain.attentions is None
    for output in (asked, cls(tiny(style, output_hidden_states=True, output_attentions=True)).eval()(**inputs())):
        assert len(output.hidden_states) == layers + 1
        assert all(h.shape == (BATCH, LENGTH, config.hidden_size) for h in output.hidden_states)
        assert len(output.attentions) == layers
        assert all(a.shape == (BATCH, config.num_attention_heads, LENGTH, LENGTH) for a in output.attentions)
        rows = output.attentions[0].sum(dim=-1)
        torch.testing.assert_close(rows, torch.ones_like(rows))  # softmax weights
    torch.testing.assert_close(main_output(asked), main_output(plain))


@styles
@heads
def test_tuple_outputs_equal_the_dict_outputs(style, cls):
    torch.manual_seed(0)
    model = cls(tiny(style)).eval()
    labels = {AstromerModel: None, AstromerForMaskedReconstruction: inputs()["magnitudes"],
              AstromerForLightCurveClassification: torch.tensor([0, 3, 1])}[cls]
    extra = {} if labels is None else {"labels": labels}
    with torch.no_grad():
        as_dict = model(**inputs(), **extra, output_hidden_states=True)
        as_tuple = model(**inputs(), **extra, output_hidden_states=True, return_dict=False)
        model.config.return_dict = False
        from_config = model(**inputs(), **extra, output_hidden_states=True)
    expected = as_dict.to_tuple()
    for result in (as_tuple, from_config):
        assert isinstance(result, tuple) and len(result) == len(expected)
        for ours, theirs in zip(result, expected):
            if isinstance(theirs, tuple):
                for a, b in zip(ours, theirs):
                    torch.testing.assert_close(a, b, rtol=0, atol=0)
            else:
                torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


@styles
def test_gradient_checkpointing_gives_the_same_gradients(style):
    torch.manual_seed(0)
    model = AstromerForMaskedReconstruction(tiny(style)).train()
    batch = {**inputs(), "labels": inputs()["magnitudes"]}
    model(**batch).loss.backward()
    reference = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing
    model(**batch).loss.backward()
    for name, p in model.named_parameters():
        if name in reference:
            torch.testing.assert_close(p.grad, reference[name], rtol=1e-5, atol=1e-7, msg=name)


@styles
def test_eager_and_sdpa_implementations_agree(style):
    torch.manual_seed(0)
    model = AstromerModel._from_config(tiny(style), attn_implementation="eager").eval()
    sdpa = AstromerModel._from_config(tiny(style), attn_implementation="sdpa").eval()
    sdpa.load_state_dict(model.state_dict())
    assert model.config._attn_implementation == "eager" and sdpa.config._attn_implementation == "sdpa"
    with torch.no_grad():
        torch.testing.assert_close(sdpa(**inputs()).last_hidden_state, model(**inputs()).last_hidden_state,
                                   rtol=1e-5, atol=1e-5)


@styles
def test_torch_export_reproduces_the_model(style):
    torch.manual_seed(0)
    model = AstromerModel(tiny(style)).eval()
    batch = inputs()
    exported = torch.export.export(model, (batch["magnitudes"], batch["times"]),
                                   {"attention_mask": batch["attention_mask"]})
    result = exported.module()(batch["magnitudes"], batch["times"], attention_mask=batch["attention_mask"])
    expected = model(**batch).last_hidden_state
    got = result.last_hidden_state if hasattr(result, "last_hidden_state") else result["last_hidden_state"]
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


@styles
def test_torch_compile_traces_the_model_in_one_graph(style):
    """``fullgraph=True``: no graph break anywhere in the forward pass (the ``aot_eager`` backend traces as
    inductor does, without generating code, to keep the test fast; compiled throughput is measured by the
    benchmarks)."""
    torch.manual_seed(0)
    torch._dynamo.reset()
    model = AstromerForMaskedReconstruction(tiny(style)).eval()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    batch = {**inputs(), "labels": inputs()["magnitudes"]}
    with torch.no_grad():
        torch.testing.assert_close(compiled(**batch).reconstruction, model(**batch).reconstruction,
                                   rtol=1e-6, atol=1e-6)


# -- initialisation --------------------------------------------------------------------------------------------------


@styles
@heads
def test_every_weight_is_initialised_by_the_model(style, cls):
    """With ``initializer_range`` tiny every kernel is ~0 and every other parameter takes its documented start:
    nothing keeps PyTorch's default initialisation."""
    config = tiny(style, initializer_range=1e-10)
    model = cls(config)
    layers = config.num_hidden_layers
    norm_weights = {f"{name}.weight" for name, module in model.named_modules() if isinstance(module, torch.nn.LayerNorm)}
    for name, parameter in model.named_parameters():
        mean = parameter.detach().mean().item()
        if name.endswith("layer_weights"):
            assert math.isclose(mean, 1 / (layers + 1), rel_tol=1e-6), name
        elif name in norm_weights:
            assert mean == 1.0, name
        else:
            assert abs(mean) < 1e-9 and parameter.detach().abs().max().item() < 1e-8, name


def test_default_initialisation_is_keras_glorot_uniform():
    model = AstromerModel(tiny("astromer1"))
    weight = model.encoder.layers[0].intermediate.weight  # (24, 16)
    bound = math.sqrt(6 / (16 + 24))
    assert weight.abs().max().item() <= bound and weight.abs().max().item() > 0.8 * bound
    assert torch.all(model.encoder.layers[0].intermediate.bias == 0)


# -- loading between base model and heads ---------------------------------------------------------------------------


@styles
def test_a_head_checkpoint_loads_into_the_base_model_quietly_and_back(style, tmp_path, capfd, caplog):
    torch.manual_seed(0)
    pretraining = AstromerForMaskedReconstruction(tiny(style))
    pretraining.save_pretrained(tmp_path / "pretraining")
    caplog.set_level(logging.WARNING)
    base = AutoModel.from_pretrained(tmp_path / "pretraining")
    assert type(base) is AstromerModel
    assert "LOAD REPORT" not in capfd.readouterr().err + caplog.text  # the released checkpoints carry a head
    for name, value in pretraining.astromer.state_dict().items():
        assert torch.equal(base.state_dict()[name], value), name

    base.save_pretrained(tmp_path / "base")
    head, info = AstromerForMaskedReconstruction.from_pretrained(tmp_path / "base", output_loading_info=True)
    assert set(info["missing_keys"]) == {"head.norm.weight", "head.norm.bias", "head.projection.weight",
                                         "head.projection.bias"}
    for name, value in base.state_dict().items():
        assert torch.equal(head.astromer.state_dict()[name], value), name

    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path / "pretraining", num_labels=3)
    assert type(classifier) is AstromerForLightCurveClassification and classifier.config.num_labels == 3
    assert isinstance(AutoModelForPreTraining.from_pretrained(tmp_path / "pretraining"),
                      AstromerForMaskedReconstruction)


def test_a_classifier_loaded_with_loading_info_applies_freezing_from_its_config(tmp_path):
    AstromerForMaskedReconstruction(tiny("astromer2")).save_pretrained(tmp_path)
    model, info = AstromerForLightCurveClassification.from_pretrained(tmp_path, freeze_encoder=True,
                                                                      output_loading_info=True)
    assert not info["unexpected_keys"]  # the reconstruction head is expected to go
    assert not any(p.requires_grad for p in model.astromer.parameters())
    assert all(p.requires_grad for p in model.classifier.parameters())
    model.train()
    assert model.classifier.training and not model.astromer.training
    model.freeze_encoder(False)
    assert all(p.requires_grad for p in model.astromer.parameters()) and model.astromer.training


@pytest.mark.parametrize("keep", ["none", "half"])
def test_a_checkpoint_missing_encoder_weights_is_refused(tmp_path, keep):
    AstromerForMaskedReconstruction(tiny("astromer1")).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    names = sorted(weights)
    kept = {} if keep == "none" else {name: weights[name] for name in names[: len(names) // 2]}
    save_file(kept, tmp_path / "model.safetensors", metadata={"format": "pt"})
    for cls in (AstromerModel, AstromerForMaskedReconstruction, AstromerForLightCurveClassification):
        with pytest.raises(OSError, match="encoder weights"):
            cls.from_pretrained(tmp_path)


# -- problem types ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "problem_type, num_labels, labels, loss_fn",
    [
        (None, 1, torch.tensor([0.5, -1.0, 2.0]), lambda logits, y: torch.nn.functional.mse_loss(logits[:, 0], y)),
        ("regression", 2, torch.randn(BATCH, 2), torch.nn.functional.mse_loss),
        (None, 4, torch.tensor([0, 3, 1]), torch.nn.functional.cross_entropy),
        ("single_label_classification", 4, torch.tensor([2, 2, 0]), torch.nn.functional.cross_entropy),
        (None, 4, torch.tensor([[1.0, 0, 0, 1], [0, 0, 0, 0], [0, 1, 1, 1]]),
         torch.nn.functional.binary_cross_entropy_with_logits),
        ("multi_label_classification", 4, torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0], [1, 1, 1, 1]]),
         torch.nn.functional.binary_cross_entropy_with_logits),
    ],
    ids=["regression-inferred", "regression", "single-inferred", "single", "multi-inferred", "multi"],
)
def test_problem_type_and_num_labels_choose_the_loss(problem_type, num_labels, labels, loss_fn):
    torch.manual_seed(0)
    model = AstromerForLightCurveClassification(tiny("astromer2", num_labels=num_labels, problem_type=problem_type))
    output = model(**inputs(), labels=labels)
    assert output.logits.shape == (BATCH, num_labels)
    torch.testing.assert_close(output.loss, loss_fn(output.logits, labels))
    output.loss.backward()
    assert model.classifier[-1].weight.grad is not None


def test_labels_of_the_wrong_shape_name_the_shape_wanted():
    model = AstromerForLightCurveClassification(tiny("astromer1"))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        model(**inputs(), labels=torch.tensor([[0], [1], [2]]))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        model(**inputs(), labels=torch.tensor([0, 4, 1]))
    multi = AstromerForLightCurveClassification(tiny("astromer1", problem_type="multi_label_classification"))
    with pytest.raises(ValueError, match=r"shape \(3, 4\)"):
        multi(**inputs(), labels=torch.ones(3, 2))


# -- processor Auto classes ------------------------------------------------------------------------------------------


def test_auto_feature_extractor_and_auto_processor_load_the_processor_of_a_folder(tmp_path, monkeypatch):
    AstromerModel(tiny("astromer1")).save_pretrained(tmp_path)
    AstromerProcessor(window_size=LENGTH, max_error=0.5).save_pretrained(tmp_path)
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("asked whether to trust remote code"))
    for auto in (AutoFeatureExtractor, AutoProcessor):
        processor = auto.from_pretrained(tmp_path)
        assert type(processor) is AstromerProcessor
        assert (processor.window_size, processor.max_error) == (LENGTH, 0.5)


@pytest.mark.parametrize("pooling", ["mean", "max", "skip"])
def test_curve_index_pools_all_the_windows_of_a_curve_into_one_prediction(pooling):
    """Windows 0 and 2 belong to curve 0, window 1 to curve 1: the per-curve pooled vector is the pooling over every
    real observation of the curve's windows, as if they were one long window."""
    torch.manual_seed(0)
    model = AstromerForLightCurveClassification(tiny("astromer2", classifier_pooling=pooling)).eval()
    batch = inputs()
    curve_index = torch.tensor([0, 1, 0])
    with torch.no_grad():
        per_curve = model(**batch, curve_index=curve_index, labels=torch.tensor([2, 1]))
        windows = model(**batch, output_hidden_states=True)
    assert per_curve.logits.shape == (2, 4) and per_curve.loss is not None
    layers = windows.hidden_states if pooling == "skip" else windows.hidden_states[-1:]
    real = batch["attention_mask"].bool()
    expected = []
    for curve in (0, 1):
        rows = (curve_index == curve).nonzero().flatten()
        per_layer = []
        for states in layers:
            points = torch.cat([states[row][real[row]] for row in rows])
            per_layer.append(points.max(dim=0).values if pooling == "max" else points.mean(dim=0))
        if pooling == "skip":
            gamma = torch.softmax(model.layer_weights, dim=0)
            expected.append((gamma[:, None] * torch.stack(per_layer)).mean(dim=0))
        else:
            expected.append(per_layer[0])
    torch.testing.assert_close(per_curve.pooled_output, torch.stack(expected), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="curve_index"):
        model(**batch, curve_index=torch.tensor([0, 1]))


# -- standardised classifier input -----------------------------------------------------------------------------------


@styles
def test_a_standardizing_classifier_learns_its_statistics_and_keeps_them_through_save_and_load(style, tmp_path):
    """``classifier_standardize``: in training the pooled embedding is standardised with the batch's statistics and the
    running ones follow; at inference (and after save/load) the head sees ``(pooled - running_mean) / running_std``."""
    torch.manual_seed(0)
    model = AstromerForLightCurveClassification(tiny(style, classifier_standardize=True))
    norm = model.pooled_norm
    assert type(norm).__name__ == "AstromerPooledStandardizer" and not list(norm.parameters())
    assert [type(layer).__name__ for layer in model.classifier] == ["Linear", "ReLU", "LayerNorm", "Linear"]
    model.train()
    for seed in range(3):
        pooled = model(**inputs(seed)).pooled_output
    assert norm.num_batches_tracked.item() == 3 and not torch.equal(norm.running_mean, torch.zeros(16))
    batch_standardised = (pooled - pooled.mean(0)) / torch.sqrt(pooled.var(0, unbiased=False) + norm.eps)
    torch.testing.assert_close(model.classifier(batch_standardised), model(**inputs(2)).logits)

    model.eval()
    with torch.no_grad():
        output = model(**inputs(5))
    expected = model.classifier((output.pooled_output - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps))
    torch.testing.assert_close(output.logits, expected)

    model.save_pretrained(tmp_path)
    loaded = AstromerForLightCurveClassification.from_pretrained(tmp_path)
    assert loaded.config.classifier_standardize
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(loaded.pooled_norm, name), getattr(norm, name)), name
    with torch.no_grad():
        assert torch.equal(loaded(**inputs(5)).logits, output.logits)


def test_a_standardizing_head_on_a_pretrained_encoder_starts_from_identity_statistics(tmp_path):
    """A classifier built from a pretraining checkpoint gets fresh statistics (mean 0, variance 1, no batches seen),
    not uninitialised memory, whatever the loading path."""
    AstromerForMaskedReconstruction(tiny("astromer1")).save_pretrained(tmp_path)
    model, info = AstromerForLightCurveClassification.from_pretrained(tmp_path, classifier_standardize=True,
                                                                      output_loading_info=True)
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    norm = model.pooled_norm
    assert torch.equal(norm.running_mean, torch.zeros(16)) and torch.equal(norm.running_var, torch.ones(16))
    assert norm.num_batches_tracked.item() == 0


def test_a_one_curve_training_batch_is_standardised_with_the_running_statistics():
    """A batch that pools to one curve has no spread: it is standardised with the running statistics and leaves them
    as they were, where a plain BatchNorm would fail ("Expected more than 1 value per channel")."""
    torch.manual_seed(0)
    model = AstromerForLightCurveClassification(tiny("astromer2", classifier_standardize=True)).train()
    model(**inputs(0))
    norm = model.pooled_norm
    before = (norm.running_mean.clone(), norm.running_var.clone(), norm.num_batches_tracked.clone())
    output = model(**inputs(1), curve_index=torch.zeros(BATCH, dtype=torch.long), labels=torch.tensor([3]))
    output.loss.backward()
    assert output.logits.shape == (1, 4) and torch.isfinite(output.logits).all()
    assert all(torch.equal(a, b) for a, b in zip(before, (norm.running_mean, norm.running_var, norm.num_batches_tracked)))
    expected = model.classifier((output.pooled_output - before[0]) / torch.sqrt(before[1] + norm.eps))
    torch.testing.assert_close(output.logits, expected)


def test_switching_standardisation_on_keeps_a_trained_heads_weights(tmp_path):
    """The standardiser is a module of its own: a classifier saved without it loads with
    ``classifier_standardize=True``, keeps every MLP weight, and starts the standardiser from fresh statistics."""
    torch.manual_seed(0)
    plain = AstromerForLightCurveClassification(tiny("astromer1"))
    plain.save_pretrained(tmp_path)
    model, info = AstromerForLightCurveClassification.from_pretrained(tmp_path, classifier_standardize=True,
                                                                      output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]  # a new part of the head is expected to be new
    assert torch.equal(model.pooled_norm.running_mean, torch.zeros(16))
    assert torch.equal(model.pooled_norm.running_var, torch.ones(16))
    for name, value in plain.classifier.state_dict().items():
        assert torch.equal(model.classifier.state_dict()[name], value), name


def test_classifier_dropout_drops_input_channels_in_training_only():
    """``classifier_dropout`` acts on the MLP's input in training (a dropped channel is zero there, the others scaled
    by 1 / (1 - p)); at inference the head is deterministic and dropout-free."""
    torch.manual_seed(0)
    model = AstromerForLightCurveClassification(tiny("astromer2", classifier_dropout=0.5, freeze_encoder=True))
    first_linear = model.classifier[0]
    seen = []
    first_linear.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    model.train()
    pooled = model(**inputs()).pooled_output.detach()
    dropped = seen[-1] == 0
    assert 0.3 < dropped.float().mean().item() < 0.7
    torch.testing.assert_close(seen[-1][~dropped], 2 * pooled[~dropped])
    model.eval()
    with torch.no_grad():
        first, second = model(**inputs()), model(**inputs())
    torch.testing.assert_close(seen[-1], first.pooled_output)
    assert torch.equal(first.logits, second.logits)
