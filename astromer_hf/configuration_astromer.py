"""Astromer model configuration.

Astromer (Donoso-Oliva et al. 2023, A&A 670, A54; Astromer 2, arXiv:2502.02717) is an encoder-only transformer
for astronomical light curves. One :class:`AstromerConfig` describes both released architectures; the named
presets ``"astromer-1"`` and ``"astromer-2"`` rebuild them exactly (see :data:`ASTROMER_PRESETS`).
"""


from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers.configuration_utils import PreTrainedConfig

@strict
class AstromerConfig(PreTrainedConfig):
    r"""
    Configuration of an Astromer encoder and its task heads.

    Args:
        hidden_size (`int`, defaults to 256):
            Width of the encoder (``d_model``); also the dimension of the sinusoidal time encoding.
        num_hidden_layers (`int`, defaults to 2):
            Number of attention blocks (2 in Astromer 1, 6 in Astromer 2).
        num_attention_heads (`int`, defaults to 4):
            Number of attention heads; ``hidden_size`` must be divisible by it.
        intermediate_size (`int`, defaults to 128):
            Width of the feed-forward layer of each block (128 in Astromer 1, 512 in Astromer 2).
        hidden_act (`str`, defaults to `"tanh"`):
            Activation of the feed-forward layer; the released models use ``"tanh"``.
        hidden_dropout_prob (`float`, defaults to 0.1):
            Dropout after the input embedding, after attention and after the feed-forward layer.
        layer_norm_eps (`float`, defaults to 1e-6):
            Epsilon of every LayerNorm (Keras ``LayerNormalization(epsilon=1e-6)`` in the original).
        window_size (`int`, defaults to 200):
            Number of observations per window the model was trained on.
        time_encoding_base (`float`, defaults to 10000.0):
            Base of the sinusoidal time encoding, ``omega_i = base ** (-2 i / hidden_size)``. The original code
            always used 10000 whatever its configuration said (``docs/architecture.md``).
        time_encoding_max_frequency (`float`, defaults to 1.0):
            Angular frequency of the encoding's fastest channel, in radians per day: ``omega_i =
            time_encoding_max_frequency * base ** (-2 i / hidden_size)``. The released models use 1.0, whose fastest
            channel turns once every 2 pi = 6.3 days, slower than most periodic variables; ``2 pi / 0.1`` makes it
            0.1 days for a new model (every channel ~63 times faster). Measured on the simulator at the quickstart's
            budget, that made both the pretraining and the embeddings worse
            (``docs/tutorials/embed_and_classify.md``, section 5).
        residual_style (`str`, defaults to `"none"`):
            ``"none"`` (Astromer 1: no residual connections), ``"projected"`` (Astromer 2:
            ``LayerNorm(Linear(x) + sublayer(x))``) or ``"identity"`` (``LayerNorm(x + sublayer(x))``, for new models).
        attention_mask_style (`str`, defaults to `"additive_one"`):
            ``"additive_one"`` (Astromer 1: ``+min(1, m_i + m_j)`` is *added* to the logits, so hidden and padded
            keys are up-weighted, not removed) or ``"key"`` (Astromer 2: hidden and padded keys get ``-1e9``).
        use_mask_token (`bool`, defaults to `False`):
            Whether hidden magnitudes are replaced by a trainable scalar [MASK] token (Astromer 2). Astromer 1 leaves
            the true value in the input and relies on the attention mask alone.
        mask_probed_fraction (`float`, defaults to 0.5):
            Fraction of a window's observations that enter the masked-reconstruction loss.
        mask_random_fraction (`float`, defaults to 0.2):
            Fraction of the probed observations (after the "same" ones) replaced by a random magnitude of the window.
        mask_same_fraction (`float`, defaults to 0.2):
            Fraction of the probed observations left visible and unchanged.
        loss_weighting (`str`, defaults to `"none"`):
            ``"none"`` or ``"inverse_error"`` (Astromer 2's optional weights ``1/sigma`` min-max scaled per window).
        classifier_pooling (`str`, defaults to `"skip"`):
            Pooling of :class:`AstromerForLightCurveClassification`: ``"mean"`` / ``"max"`` over real observations of
            the last layer, or ``"skip"``: a softmax(gamma)-weighted mean of the masked means of the input embedding
            and every layer output (Astromer 2's ``skip_avg_mlp``).
        classifier_hidden_sizes (`list[int]`, defaults to `[1024, 512, 256]`):
            Hidden widths of the classification MLP (ReLU), followed by LayerNorm and the output layer.
        classifier_standardize (`bool`, defaults to `False`):
            Whether the classifier standardises each channel of the pooled embedding before its MLP: a
            ``BatchNorm1d`` without learnt scale or shift, batch statistics in training and the running statistics
            (saved with the model) at inference. Pooled embeddings of a pretrained encoder share a large common part
            and differ little across curves; standardised, a freshly initialised head sees their differences.
        classifier_dropout (`float`, defaults to 0.0):
            Dropout on the (standardised) pooled embedding at the classifier MLP's input, in training only.
        freeze_encoder (`bool`, defaults to `False`):
            Whether the classifier keeps the encoder frozen (the Astromer 2 protocol) or trains it too.
        initializer_range (`float`, *optional*):
            None (the default) initialises kernels as the original Keras code did (Glorot-uniform); a float draws
            them from ``normal(0, initializer_range)`` instead.
    """

    model_type = "astromer"

    hidden_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 128
    hidden_act: Literal["tanh", "relu", "gelu"] = "tanh"
    hidden_dropout_prob: float | int = 0.1
    layer_norm_eps: float = 1e-6
    window_size: int = 200
    time_encoding_base: float | int = 10000.0
    time_encoding_max_frequency: float | int = 1.0
    residual_style: Literal["none", "projected", "identity"] = "none"
    attention_mask_style: Literal["additive_one", "key"] = "additive_one"
    use_mask_token: bool = False
    mask_probed_fraction: float | int = 0.5
    mask_random_fraction: float | int = 0.2
    mask_same_fraction: float | int = 0.2
    loss_weighting: Literal["none", "inverse_error"] = "none"
    classifier_pooling: Literal["mean", "max", "skip"] = "skip"
    classifier_hidden_sizes: list[int] | tuple[int, ...] = (1024, 512, 256)
    classifier_standardize: bool = False
    classifier_dropout: float | int = 0.0
    freeze_encoder: bool = False
    initializer_range: float | None = None

    def __post_init__(self, **kwargs):
        self.classifier_hidden_sizes = list(self.classifier_hidden_sizes)
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Part of `@strict` validation: sizes must be consistent and choices known."""
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "window_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)}.")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads})."
            )
        if self.hidden_size % 2 != 0:
            raise ValueError(f"`hidden_size` must be even for the sin/cos time encoding, got {self.hidden_size}.")
        for name in ("hidden_dropout_prob", "mask_probed_fraction", "mask_random_fraction", "mask_same_fraction",
                     "classifier_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"`{name}` must lie in [0, 1], got {value}.")
        if self.initializer_range is not None and not self.initializer_range > 0:
            raise ValueError(f"`initializer_range` must be positive or None, got {self.initializer_range}.")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"`layer_norm_eps` must be positive, got {self.layer_norm_eps}.")
        if not self.time_encoding_base > 1:
            raise ValueError(f"`time_encoding_base` must be greater than 1, got {self.time_encoding_base}.")
        if not (isinstance(self.time_encoding_max_frequency, (int, float)) and 0 < self.time_encoding_max_frequency
                < float("inf")):
            raise ValueError(f"`time_encoding_max_frequency` must be a positive number (radians per day), got "
                             f"{self.time_encoding_max_frequency!r}.")
        if any((not isinstance(size, int)) or size < 1 for size in self.classifier_hidden_sizes):
            raise ValueError(
                f"`classifier_hidden_sizes` must be positive integers, got {self.classifier_hidden_sizes}."
            )

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "AstromerConfig":
        """Build a named architecture (``"astromer-1"``, ``"astromer-2"``), optionally overriding fields.

        Example::

            config = AstromerConfig.from_preset("astromer-2", hidden_dropout_prob=0.0)
        """
        if name not in ASTROMER_PRESETS:
            raise ValueError(f"Unknown Astromer preset {name!r}; available presets: {sorted(ASTROMER_PRESETS)}.")
        return cls(**{**ASTROMER_PRESETS[name], **overrides})


ASTROMER_PRESETS: dict[str, dict] = {
    # Released Astromer 1 (MACHO weights macho_a0): 2 blocks, no residuals, "+1" attention mask, no [MASK] token.
    # 661,505 parameters with the reconstruction head.
    "astromer-1": dict(
        hidden_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        hidden_dropout_prob=0.1,
        residual_style="none",
        attention_mask_style="additive_one",
        use_mask_token=False,
        mask_probed_fraction=0.5,
        mask_random_fraction=0.2,
        mask_same_fraction=0.2,
        loss_weighting="none",
    ),
    # Released Astromer 2 (diagstromer, 2024-12-02): 6 blocks, projected residuals, key masking, trainable
    # scalar [MASK] token. 3,953,410 parameters with the reconstruction head.
    "astromer-2": dict(
        hidden_size=256,
        num_hidden_layers=6,
        num_attention_heads=4,
        intermediate_size=512,
        hidden_dropout_prob=0.1,
        residual_style="projected",
        attention_mask_style="key",
        use_mask_token=True,
        mask_probed_fraction=0.5,
        mask_random_fraction=0.2,
        mask_same_fraction=0.2,
        loss_weighting="none",
    ),
}

# Saved configurations name this class in their `auto_map`, so they load with `trust_remote_code=True` where this
# package is not installed.
AstromerConfig.register_for_auto_class()

__all__ = ["AstromerConfig", "ASTROMER_PRESETS"]
