"""AstromerConfig: presets, validation, serialisation."""

import pytest
from transformers import AutoConfig

import astromer_hf
from astromer_hf import ASTROMER_PRESETS, AstromerConfig, AstromerForMaskedReconstruction


def n_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("preset", "expected"), [("astromer-1", 661_505), ("astromer-2", 3_953_410)])
def test_presets_rebuild_the_released_parameter_counts(preset, expected):
    model = AstromerForMaskedReconstruction(AstromerConfig.from_preset(preset))
    assert n_parameters(model) == expected


def test_astromer1_preset_has_the_released_quirks():
    config = AstromerConfig.from_preset("astromer-1")
    assert (config.num_hidden_layers, config.intermediate_size, config.hidden_size) == (2, 128, 256)
    assert config.residual_style == "none"
    assert config.attention_mask_style == "additive_one"
    assert config.use_mask_token is False
    assert config.layer_norm_eps == 1e-6 and config.window_size == 200 and config.hidden_act == "tanh"


def test_astromer2_preset_has_the_released_quirks():
    config = AstromerConfig.from_preset("astromer-2")
    assert (config.num_hidden_layers, config.intermediate_size) == (6, 512)
    assert config.residual_style == "projected"
    assert config.attention_mask_style == "key"
    assert config.use_mask_token is True


def test_preset_overrides_and_unknown_preset():
    config = AstromerConfig.from_preset("astromer-2", hidden_dropout_prob=0.0)
    assert config.hidden_dropout_prob == 0.0 and config.num_hidden_layers == 6
    with pytest.raises(ValueError, match="Unknown Astromer preset 'astromer-3'"):
        AstromerConfig.from_preset("astromer-3")
    assert set(ASTROMER_PRESETS) == {"astromer-1", "astromer-2"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(hidden_size="256"), "hidden_size"),
        (dict(num_hidden_layers=2.5), "num_hidden_layers"),
        (dict(use_mask_token="yes"), "use_mask_token"),
        (dict(residual_style="skip"), "residual_style"),
        (dict(attention_mask_style="causal"), "attention_mask_style"),
        (dict(loss_weighting="snr"), "loss_weighting"),
        (dict(hidden_act="swish"), "hidden_act"),
        (dict(hidden_size=250, num_attention_heads=4), "must be divisible by `num_attention_heads`"),
        (dict(hidden_size=5, num_attention_heads=5), "hidden_size` must be even"),
        (dict(num_hidden_layers=0), "`num_hidden_layers` must be a positive integer"),
        (dict(mask_probed_fraction=1.5), "`mask_probed_fraction` must lie in \\[0, 1\\]"),
        (dict(hidden_dropout_prob=-0.1), "`hidden_dropout_prob` must lie in \\[0, 1\\]"),
        (dict(classifier_dropout=1.5), "`classifier_dropout` must lie in \\[0, 1\\]"),
        (dict(layer_norm_eps=0.0), "`layer_norm_eps` must be positive"),
        (dict(time_encoding_base=1.0), "`time_encoding_base` must be greater than 1"),
        (dict(time_encoding_max_frequency=0.0), "`time_encoding_max_frequency` must be a positive number"),
        (dict(time_encoding_max_frequency=float("inf")), "`time_encoding_max_frequency` must be a positive number"),
        (dict(classifier_hidden_sizes=[64, 0]), "`classifier_hidden_sizes` must be positive integers"),
    ],
)
def test_bad_values_raise_a_clear_error_at_construction(kwargs, message):
    with pytest.raises(Exception, match=message):
        AstromerConfig(**kwargs)


def test_save_and_load_round_trip(tmp_path):
    config = AstromerConfig.from_preset("astromer-2", classifier_pooling="max", num_labels=6)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, AstromerConfig)
    ignored = {"auto_map", "transformers_version", "_name_or_path"}
    assert {k: v for k, v in loaded.to_dict().items() if k not in ignored} == {
        k: v for k, v in config.to_dict().items() if k not in ignored
    }
    assert loaded.classifier_hidden_sizes == [1024, 512, 256]
    assert loaded.num_labels == 6


def test_model_type_is_registered_with_autoconfig():
    assert astromer_hf.AstromerConfig.model_type == "astromer"
    config = AutoConfig.for_model("astromer", num_hidden_layers=1)
    assert isinstance(config, AstromerConfig) and config.num_hidden_layers == 1
