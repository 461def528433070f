"""PyTorch Astromer: a transformer encoder for irregularly sampled light curves.

Astromer (Donoso-Oliva et al. 2023, A&A 670, A54) embeds a window of observations ``(time, magnitude)`` with a
linear projection of the magnitude plus a sinusoidal encoding of the *real* observation time, runs post-LayerNorm
attention blocks with a tanh feed-forward layer, and is pretrained by reconstructing masked magnitudes (masked RMSE).
Astromer 2 (arXiv:2502.02717) adds projected residual connections, key-only attention masking and a trainable
[MASK] token. Both released architectures are built from one :class:`~astromer_hf.AstromerConfig`; the quirks that
matter for loading the released weights are described in ``docs/architecture.md``.

Shapes used in the docstrings: ``B`` batch (windows), ``T`` window length (observations), ``D`` hidden size,
``H`` attention heads, ``L`` layers, ``C`` classes.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel
from transformers.utils import ModelOutput, can_return_tuple

from .configuration_astromer import AstromerConfig

# Value Astromer 2 adds to the attention logits of concealed (masked or padded) keys (``m_alpha = -1e9`` in the original).
KEY_MASK_VALUE = -1e9

# Every Auto class a saved Astromer folder answers to with `trust_remote_code=True`, whichever head was saved.
REMOTE_CODE_AUTO_MAP = {
    "AutoConfig": "configuration_astromer.AstromerConfig",
    "AutoModel": "modeling_astromer.AstromerModel",
    "AutoModelForPreTraining": "modeling_astromer.AstromerForMaskedReconstruction",
    "AutoModelForSequenceClassification": "modeling_astromer.AstromerForLightCurveClassification",
}


# ----------------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class AstromerModelOutput(ModelOutput):
    """
    Output of :class:`AstromerModel`.

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(B, T, D)`):
            Per-observation embeddings from the last attention block.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned with `output_hidden_states=True`):
            ``L + 1`` tensors of shape `(B, T, D)`: the input embedding (magnitude projection + time encoding,
            before dropout) followed by the output of every block.
        attentions (`tuple(torch.FloatTensor)`, *optional*, returned with `output_attentions=True`):
            ``L`` tensors of shape `(B, H, T, T)`: the softmax attention weights of every block.
    """

    last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class AstromerMaskedReconstructionOutput(ModelOutput):
    """
    Output of :class:`AstromerForMaskedReconstruction`.

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` are given):
            Masked RMSE: square root of the batch mean of each window's mean squared error over its probed
            observations (optionally inverse-error weighted).
        r2 (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` are given):
            Coefficient of determination pooled over the probed observations of the batch.
        reconstruction (`torch.FloatTensor` of shape `(B, T)`):
            Predicted (window-centred) magnitude at every position.
        last_hidden_state (`torch.FloatTensor` of shape `(B, T, D)`):
            Encoder output.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*):
            As in :class:`AstromerModelOutput`.
        attentions (`tuple(torch.FloatTensor)`, *optional*):
            As in :class:`AstromerModelOutput`.
        window_mse (`torch.FloatTensor` of shape `(B,)`, *optional*, returned when `labels` are given):
            Each window's (weighted) masked MSE, NaN for a window with no probed position; `loss` is the square root
            of the mean of the others. Data-parallel training averages these over all processes.
    """

    loss: torch.FloatTensor | None = None
    r2: torch.FloatTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    window_mse: torch.FloatTensor | None = None


@dataclass
class AstromerClassificationOutput(ModelOutput):
    """
    Output of :class:`AstromerForLightCurveClassification`.

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` are given):
            The loss of ``config.problem_type``: cross-entropy, binary cross-entropy with logits, or mean squared
            error.
        logits (`torch.FloatTensor` of shape `(B, C)`):
            Unnormalised class scores (regression: the predictions).
        pooled_output (`torch.FloatTensor` of shape `(B, D)`):
            The pooled window embedding fed to the classification MLP.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*):
            As in :class:`AstromerModelOutput`.
        attentions (`tuple(torch.FloatTensor)`, *optional*):
            As in :class:`AstromerModelOutput`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    pooled_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# ----------------------------------------------------------------------------------------------------------------------
# Functional pieces: time encoding, attention masks, losses and metrics
# ----------------------------------------------------------------------------------------------------------------------
def sinusoidal_time_encoding(times: torch.Tensor, hidden_size: int, base: float = 10000.0,
                             max_frequency: float = 1.0) -> torch.Tensor:
    """Astromer's encoding of real observation times.

    Every channel ``i`` has its own angular frequency ``omega_i = max_frequency * base ** (-2 i / hidden_size)``
    (radians per day; the released models have ``max_frequency`` 1) (the exponent uses
    ``i`` itself, not ``2 * floor(i / 2)`` as in Vaswani et al.); even channels take the sine and odd channels the
    cosine of ``t * omega_i``.

    Args:
        times (`torch.Tensor` of shape `(B, T)`): window-centred observation times in days. float64 input is kept in
            float64 for the angle computation; anything else is computed in float32.
        hidden_size (`int`): number of channels ``D`` (even).
        base (`float`): frequency base.
        max_frequency (`float`): angular frequency of channel 0, radians per day.

    Returns:
        `torch.Tensor` of shape `(B, T, D)` in the dtype of the angles (float32 or float64).
    """
    compute_dtype = torch.float64 if times.dtype == torch.float64 else torch.float32
    channels = torch.arange(hidden_size, device=times.device, dtype=torch.float64)
    frequencies = float(max_frequency) * torch.pow(torch.tensor(float(base), dtype=torch.float64),
                                                   -2.0 * channels / hidden_size)
    frequencies = frequencies.to(device=times.device, dtype=compute_dtype)
    t = times.to(compute_dtype).unsqueeze(-1)
    # sine of the even channels' angles, cosine of the odd ones' (each computed once), interleaved back
    encoding = torch.stack((torch.sin(t * frequencies[0::2]), torch.cos(t * frequencies[1::2])), dim=-1)
    return encoding.flatten(-2)


def build_attention_bias(concealed: torch.Tensor, style: str, dtype: torch.dtype) -> torch.Tensor:
    """Additive attention bias for the two released mask styles.

    Args:
        concealed (`torch.BoolTensor` of shape `(B, T)`): True where the magnitude is concealed from the model: a
            [MASK]ed position or padding.
        style (`str`): ``"additive_one"`` (Astromer 1: ``+min(1, m_i + m_j)``, shape `(B, 1, T, T)`) or ``"key"``
            (Astromer 2: ``-1e9`` on concealed keys, shape `(B, 1, 1, T)`).
        dtype (`torch.dtype`): dtype of the attention logits.

    The Astromer 1 bias *adds* 1 to the logits of concealed positions: it up-weights them instead of removing
    them, so padding takes part in attention, and a window's output depends on how much padding its batch has
    (see ``docs/architecture.md``). It is kept because the released weights were trained with it.
    """
    m = concealed.to(dtype)
    if style == "additive_one":
        return torch.clamp(m[:, None, :, None] + m[:, None, None, :], max=1.0)
    mask_value = max(KEY_MASK_VALUE, torch.finfo(dtype).min)
    return (m * mask_value)[:, None, None, :]


def _cache_sizes() -> tuple[int, int]:
    """``(L2 bytes per core, last-level cache bytes)`` of CPU 0, read from sysfs; conservative defaults elsewhere."""
    global _CACHE_SIZES
    if _CACHE_SIZES is None:
        sizes = {}
        root = "/sys/devices/system/cpu/cpu0/cache"
        try:
            for index in sorted(name for name in os.listdir(root) if name.startswith("index")):
                with open(f"{root}/{index}/level") as level, open(f"{root}/{index}/size") as size, \
                        open(f"{root}/{index}/type") as kind:
                    if kind.read().strip() == "Instruction":
                        continue
                    text = size.read().strip().upper()
                    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
                    sizes[int(level.read())] = int(text.rstrip("KMG")) * scale
        except (OSError, ValueError):
            pass
        l2 = sizes.get(2, 1 << 20)
        _CACHE_SIZES = (l2, max(sizes.values(), default=l2))
    return _CACHE_SIZES


_CACHE_SIZES: tuple[int, int] | None = None


#: On the CPU the fused Q/K/V projection gets zero weight rows up to a multiple of this many output columns, which
#: are never read. Astromer 1 has 780 (3 x 4 heads x 65, the rank-one mask column included): on the development
#: machine that GEMM took 25.5 ms against 17.1 ms for 784 columns on the same 6,400 x 256 input (docs/benchmarks.md).
GEMM_COLUMN_MULTIPLE = 16


#: The fewest windows :func:`default_inference_batch_size` puts in a slice (``python -m benchmarks`` times Astromer 1
#: with slices of 8 windows, the earlier floor, beside the default: docs/benchmarks.md).
MIN_INFERENCE_SLICE = 32


def default_inference_batch_size(config: AstromerConfig, length: int) -> int:
    """Windows per slice of a CPU inference batch, from the machine's caches rather than the caller's batch size.

    A slice's activations (per position: the input and fused Q/K/V of the attention, its output, the feed-forward's
    inner layer, in float32) should fit in half the last-level cache, so that each layer reads what the previous one
    wrote from the cache instead of memory; large batches otherwise get slower per window. Rounded down to a power
    of two, and at least :data:`MIN_INFERENCE_SLICE` windows: every slice runs every operation once more, and each
    multi-threaded operation waits for all its threads, so on a busy machine (a thread descheduled by another
    process) many small slices cost more than the cache misses they save (``docs/benchmarks.md``).
    """
    _, last_level = _cache_sizes()
    per_position = 4 * (6 * config.hidden_size + 2 * config.intermediate_size)
    windows = max(1, (last_level // 2) // max(1, per_position * max(1, length)))
    return max(MIN_INFERENCE_SLICE, 1 << (windows.bit_length() - 1))



def inverse_error_weights(errors: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Astromer 2's optional loss weights: ``w = 1 / sigma``, min-max scaled over each window's real observations,
    plus ``1e-3``.

    Args:
        errors (`torch.Tensor` of shape `(B, T)`): raw (not centred) magnitude errors, positive where observed.
        loss_mask (`torch.BoolTensor` of shape `(B, T)`): positions the weights are needed for.

    Returns:
        `torch.Tensor` of shape `(B, T)`, zero outside `loss_mask`.
    """
    valid = loss_mask & (errors > 0)
    inverse = torch.where(valid, 1.0 / torch.where(valid, errors, torch.ones_like(errors)), torch.zeros_like(errors))
    lowest = torch.where(valid, inverse, torch.full_like(inverse, float("inf"))).amin(dim=1, keepdim=True)
    highest = torch.where(valid, inverse, torch.full_like(inverse, float("-inf"))).amax(dim=1, keepdim=True)
    span = (highest - lowest).clamp_min(torch.finfo(errors.dtype).tiny)
    return torch.where(valid, (inverse - lowest) / span + 1e-3, torch.zeros_like(inverse))


def masked_window_mse(
    predictions: torch.Tensor, targets: torch.Tensor, loss_mask: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each window's masked MSE ``sum_i m w (y - yhat)^2 / sum_i m`` (the denominator is not weighted).

    Args:
        predictions, targets (`torch.Tensor` of shape `(B, T)`).
        loss_mask (`torch.Tensor` of shape `(B, T)`): 1 where the position enters the loss.
        weights (`torch.Tensor` of shape `(B, T)`, *optional*): per-position weights ``w``.

    Returns:
        `(mse, has_probe)`, both of shape `(B,)`: the MSE (0 for a window with no probed position) and whether the
        window has any probed position.
    """
    mask = loss_mask.to(predictions.dtype)
    squared = (targets - predictions) ** 2 * mask
    if weights is not None:
        squared = squared * weights
    counts = mask.sum(dim=1)
    has_probe = counts > 0
    return squared.sum(dim=1) / counts.clamp_min(1.0), has_probe


def masked_rmse(
    predictions: torch.Tensor, targets: torch.Tensor, loss_mask: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Astromer's masked RMSE: ``sqrt(mean_b(sum_i m w (y - yhat)^2 / sum_i m))``.

    The per-window denominator counts probed positions (it is not weighted). Windows with no probed position are
    left out of the batch mean (the original would return NaN for them); a batch with none at all raises ValueError.

    Args:
        predictions, targets (`torch.Tensor` of shape `(B, T)`).
        loss_mask (`torch.Tensor` of shape `(B, T)`): 1 where the position enters the loss.
        weights (`torch.Tensor` of shape `(B, T)`, *optional*): per-position weights ``w``.

    Returns:
        `torch.Tensor` of shape `()`.
    """
    per_window, has_probe = masked_window_mse(predictions, targets, loss_mask, weights)
    if not bool(has_probe.any()):
        raise ValueError("No position enters the loss: every window has an empty `loss_mask`.")
    return torch.sqrt(per_window[has_probe].mean())


def masked_r2(predictions: torch.Tensor, targets: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Coefficient of determination pooled over a batch: ``1 - sum m (y - yhat)^2 / sum m (y - ybar_b)^2`` where
    ``ybar_b`` is each window's mean over its masked positions.

    Args:
        predictions, targets, loss_mask (`torch.Tensor` of shape `(B, T)`).

    Returns:
        `torch.Tensor` of shape `()`.
    """
    mask = loss_mask.to(predictions.dtype)
    window_mean = (targets * mask).sum(dim=1, keepdim=True) / mask.sum(dim=1, keepdim=True).clamp_min(1.0)
    residual = ((targets - predictions) ** 2 * mask).sum()
    total = ((targets - window_mean) ** 2 * mask).sum()
    return 1.0 - residual / total


def masked_mean(
    hidden_states: torch.Tensor, mask: torch.Tensor, group: torch.Tensor | None = None, n_groups: int | None = None
) -> torch.Tensor:
    """Mean of `(B, T, D)` states at the positions where `mask` `(B, T)` is 1: per window, `(B, D)`; or, with
    `group` `(B,)` (e.g. the curve of each window), over every real position of all the windows of each group,
    `(n_groups, D)` (observation-weighted; a group without any real position gives zeros)."""
    weights = mask.to(hidden_states.dtype).unsqueeze(-1)
    sums, counts = (hidden_states * weights).sum(dim=1), weights.sum(dim=1)
    if group is not None:
        n_groups = int(group.max()) + 1 if n_groups is None else n_groups
        sums = sums.new_zeros(n_groups, sums.shape[-1]).index_add_(0, group, sums)
        counts = counts.new_zeros(n_groups, 1).index_add_(0, group, counts)
    return sums / counts.clamp_min(1.0)


def masked_max(
    hidden_states: torch.Tensor, mask: torch.Tensor, group: torch.Tensor | None = None, n_groups: int | None = None
) -> torch.Tensor:
    """Maximum of `(B, T, D)` states at the positions where `mask` `(B, T)` is 1: per window, `(B, D)`; or, with
    `group` `(B,)`, over all the windows of each group, `(n_groups, D)`."""
    lowest = torch.finfo(hidden_states.dtype).min
    window_max = hidden_states.masked_fill(~mask.bool().unsqueeze(-1), lowest).amax(dim=1)
    if group is None:
        return window_max
    n_groups = int(group.max()) + 1 if n_groups is None else n_groups
    index = group.unsqueeze(-1).expand_as(window_max)
    return window_max.new_full((n_groups, window_max.shape[-1]), lowest).scatter_reduce(
        0, index, window_max, reduce="amax"
    )


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention. `query`/`key`/`value` are `(B, H, T, D/H)`; `attention_mask` is an additive bias
    broadcastable to `(B, H, T, T)`. Returns the output `(B, T, H, D/H)` and the weights `(B, H, T, T)`."""
    logits = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        logits = logits + attention_mask
    weights = nn.functional.softmax(logits, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


# ----------------------------------------------------------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------------------------------------------------------
class AttentionMask(NamedTuple):
    """How concealed (masked or padded) positions enter the attention logits, in the form the attention path of the
    call uses; :class:`AstromerModel` builds it once per forward pass.

    Attributes:
        bias (`torch.Tensor`, *optional*): additive logit bias broadcastable to `(B, H, T, T)`: the dense
            `(B, 1, T, T)` Astromer 1 bias for eager attention, a per-key `(B, 1, 1, T)` bias (Astromer 2's key mask,
            log key multiplicities), or None.
        query_extra, key_extra (`torch.Tensor` of shape `(B, T)`, *optional*): a rank-one term
            ``query_extra_i * key_extra_j`` added to the logits. The SDPA path computes it inside ``Q K^T`` by
            appending one column to every head's queries and keys, so Astromer 1's ``+min(1, m_i + m_j)`` bias is
            never built as a `(B, T, T)` tensor (see :func:`additive_one_rank_one_terms`).
    """

    bias: torch.Tensor | None = None
    query_extra: torch.Tensor | None = None
    key_extra: torch.Tensor | None = None


def additive_one_rank_one_terms(concealed: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Astromer 1's bias ``min(1, m_i + m_j)`` as a rank-one term, for softmax over keys ``j``.

    ``min(1, m_i + m_j) = m_i + (1 - m_i) m_j`` for binary ``m``, and ``m_i`` is the same for every key of query
    ``i``, which softmax ignores; so the attention weights are those of the bias ``(1 - m_i) m_j``: the outer product
    of ``1 - m`` (queries) and ``m`` (keys). Returns ``(1 - m, m)`` as `(B, T)` tensors of ``dtype``.
    """
    m = concealed.to(dtype)
    return 1.0 - m, m


def _uses_fast_attention(config: AstromerConfig, output_attentions: bool) -> bool:
    """Whether a forward pass takes the SDPA path (fused projections, no dense mask) rather than the eager one."""
    return config._attn_implementation == "sdpa" and not output_attentions


class AstromerEmbeddings(nn.Module):
    """Input embedding: ``Linear(1 -> D)(magnitude) + time_encoding(time)``; concealed magnitudes are first replaced
    by the trainable scalar [MASK] token when the config has one. Under autocast it is still computed in float32
    (the time encoding of large angles and the one-column projection lose most in reduced precision)."""

    def __init__(self, config: AstromerConfig):
        super().__init__()
        self.config = config
        self.magnitude_projection = nn.Linear(1, config.hidden_size)
        self.mask_token = nn.Parameter(torch.zeros(())) if config.use_mask_token else None
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, magnitudes: torch.Tensor, times: torch.Tensor, concealed: torch.Tensor) -> torch.Tensor:
        """
        Args:
            magnitudes, times (`torch.Tensor` of shape `(B, T)`).
            concealed (`torch.BoolTensor` of shape `(B, T)`): masked or padded positions.

        Returns:
            The embedding before dropout, `(B, T, D)`, in the dtype of the weights.
        """
        device_type = magnitudes.device.type
        if torch.is_autocast_enabled(device_type):
            with torch.autocast(device_type, enabled=False):
                return self._embed(magnitudes, times, concealed)
        return self._embed(magnitudes, times, concealed)

    def _embed(self, magnitudes: torch.Tensor, times: torch.Tensor, concealed: torch.Tensor) -> torch.Tensor:
        weight = self.magnitude_projection.weight
        magnitudes = magnitudes.to(weight.dtype)
        if self.mask_token is not None:
            magnitudes = torch.where(concealed, self.mask_token.to(weight.dtype), magnitudes)
        # Linear(1 -> D) is an outer product: one multiply-add per element, no GEMM with an inner dimension of 1
        projected = torch.addcmul(self.magnitude_projection.bias, magnitudes.unsqueeze(-1), weight.squeeze(-1))
        encoding = sinusoidal_time_encoding(times, self.config.hidden_size, self.config.time_encoding_base,
                                            self.config.time_encoding_max_frequency)
        return projected + encoding.to(weight.dtype)


class AstromerAttention(nn.Module):
    """Multi-head self-attention with biased Q/K/V/output projections, as in both released models.

    The weights are stored as the four separate projections of the original (``q_proj``, ``k_proj``, ``v_proj``,
    ``out_proj``: the checkpoint format). The SDPA path (:meth:`fused_forward`) concatenates them at run time into
    one ``(3D, D)`` projection, a GEMM three times as wide (on the CPU with zero rows up to a multiple of
    :data:`GEMM_COLUMN_MULTIPLE`), and reads queries, keys and values as strided views of its output; gradients flow
    back to the separate weights.
    """

    is_causal = False

    def __init__(self, config: AstromerConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.scaling = self.head_dim**-0.5
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self, hidden_states: torch.Tensor, attention_bias: torch.Tensor, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention through transformers' attention interface (eager, or the implementation the config names).

        Args:
            hidden_states (`torch.Tensor` of shape `(B, T, D)`).
            attention_bias (`torch.Tensor` broadcastable to `(B, H, T, T)`): additive logit bias.
            output_attentions (`bool`): also return the weights `(B, H, T, T)` (computed with eager attention).
        """
        batch, length, _ = hidden_states.shape
        shape = (batch, length, self.num_heads, self.head_dim)
        query = self.q_proj(hidden_states).view(shape).transpose(1, 2)
        key = self.k_proj(hidden_states).view(shape).transpose(1, 2)
        value = self.v_proj(hidden_states).view(shape).transpose(1, 2)

        attention_interface: Callable = eager_attention_forward
        if not output_attentions:
            attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
                self.config._attn_implementation, eager_attention_forward
            )
        output, weights = attention_interface(
            self, query, key, value, attention_bias.to(query.dtype), scaling=self.scaling, dropout=0.0
        )
        output = self.out_proj(output.reshape(batch, length, -1))
        return output, weights

    def fused_forward(
        self, hidden_states: torch.Tensor, mask: AttentionMask, residual_projection: nn.Linear | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The SDPA path: one fused Q/K/V GEMM (with ``residual_projection``, Astromer 2's ``Linear(x)`` residual
        branch, as further columns of the same GEMM), ``scaled_dot_product_attention`` on strided views, and the
        output projection.

        A rank-one bias (``mask.query_extra``, ``mask.key_extra``) is computed inside ``Q K^T``: every head's
        queries and keys get one more column (zero rows of the fused weight, filled with ``query_extra / scale`` and
        ``key_extra``; the values get a zero column, which a zero column of the output weight drops). On CUDA the
        heads are widened by 8 instead of 1, keeping the head size a multiple of 8 for the flash kernels.

        Returns:
            The attention output `(B, T, D)` and ``residual_projection(hidden_states)`` (None without it).
        """
        batch, length, hidden = hidden_states.shape
        heads, head_dim = self.num_heads, self.head_dim
        extra = 0 if mask.query_extra is None else (1 if hidden_states.device.type == "cpu" else 8)
        width = head_dim + extra
        weight = torch.stack((self.q_proj.weight, self.k_proj.weight, self.v_proj.weight))
        bias = torch.stack((self.q_proj.bias, self.k_proj.bias, self.v_proj.bias))
        if extra:
            weight = nn.functional.pad(weight.view(3, heads, head_dim, hidden), (0, 0, 0, extra))
            bias = nn.functional.pad(bias.view(3, heads, head_dim), (0, extra))
        weight, bias = weight.reshape(3 * heads * width, hidden), bias.reshape(3 * heads * width)
        if residual_projection is not None:
            weight = torch.cat((weight, residual_projection.weight))
            bias = torch.cat((bias, residual_projection.bias))
        columns = weight.shape[0]
        if hidden_states.device.type == "cpu" and columns % GEMM_COLUMN_MULTIPLE:
            padding = GEMM_COLUMN_MULTIPLE - columns % GEMM_COLUMN_MULTIPLE  # zero rows: unused output columns
            weight, bias = nn.functional.pad(weight, (0, 0, 0, padding)), nn.functional.pad(bias, (0, padding))
        projected = nn.functional.linear(hidden_states, weight, bias)
        qkv = projected[..., : 3 * heads * width].view(batch, length, 3, heads, width)
        if extra:
            qkv[:, :, 0, :, head_dim] = (mask.query_extra / self.scaling).unsqueeze(-1).to(qkv.dtype)
            qkv[:, :, 1, :, head_dim] = mask.key_extra.unsqueeze(-1).to(qkv.dtype)
        residual = projected[..., 3 * heads * width : columns] if residual_projection is not None else None
        query, key, value = (part.transpose(1, 2) for part in qkv.unbind(2))  # (B, H, T, width) views
        attn_mask = None if mask.bias is None else mask.bias.to(query.dtype)
        output = nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=attn_mask, dropout_p=0.0, scale=self.scaling
        )
        output = output.transpose(1, 2).reshape(batch, length, heads * width)
        out_weight = self.out_proj.weight
        if extra:
            out_weight = nn.functional.pad(out_weight.view(hidden, heads, head_dim), (0, extra)).reshape(hidden, -1)
        return nn.functional.linear(output, out_weight, self.out_proj.bias), residual


class AstromerLayer(GradientCheckpointingLayer):
    """Post-LayerNorm attention block with a feed-forward layer.

    With ``r`` the residual branch (nothing for ``"none"``, ``x`` for ``"identity"``, ``Linear(x)`` for
    ``"projected"``)::

        h   = LayerNorm(r(x) + Dropout(Attention(x)))
        out = LayerNorm(r(h) + Dropout(Linear(act(Linear(h)))))

    On the SDPA path the projections that read the same input run as one GEMM: Q, K, V (and ``Linear(x)``), and
    the feed-forward's first layer with ``Linear(h)``.
    """

    def __init__(self, config: AstromerConfig):
        super().__init__()
        self.config = config
        self.residual_style = config.residual_style
        self.attention = AstromerAttention(config)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.intermediate = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = ACT2FN[config.hidden_act]
        self.output = nn.Linear(config.intermediate_size, config.hidden_size)
        self.output_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        if config.residual_style == "projected":
            self.attention_residual = nn.Linear(config.hidden_size, config.hidden_size)
            self.output_residual = nn.Linear(config.hidden_size, config.hidden_size)

    def _residual(self, x: torch.Tensor, which: str) -> torch.Tensor | None:
        if self.residual_style == "identity":
            return x
        if self.residual_style == "projected":
            return getattr(self, f"{which}_residual")(x)
        return None

    def _norm(self, norm: nn.LayerNorm, residual: torch.Tensor | None, branch: torch.Tensor) -> torch.Tensor:
        """``norm(residual + dropout(branch))``; with no residual (``"none"``), ``norm(dropout(branch))``."""
        branch = self.dropout(branch)
        return norm(branch if residual is None else residual + branch)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: AttentionMask | torch.Tensor, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`hidden_states` `(B, T, D)` -> `(B, T, D)` and the attention weights `(B, H, T, T)` on request.

        `attention_mask` is the :class:`AttentionMask` of the call (or, for the eager path, a plain additive bias).
        """
        if not isinstance(attention_mask, AttentionMask):
            attention_mask = AttentionMask(bias=attention_mask)
        if not _uses_fast_attention(self.config, output_attentions):
            attended, weights = self.attention(hidden_states, attention_mask.bias, output_attentions)
            attended = self._norm(self.attention_norm, self._residual(hidden_states, "attention"), attended)
            transformed = self.output(self.activation(self.intermediate(attended)))
            output = self._norm(self.output_norm, self._residual(attended, "output"), transformed)
            return output, weights

        projected = self.residual_style == "projected"
        attended, residual = self.attention.fused_forward(
            hidden_states, attention_mask, self.attention_residual if projected else None
        )
        if self.residual_style == "identity":
            residual = hidden_states
        attended = self._norm(self.attention_norm, residual, attended)
        if projected:  # the feed-forward's first layer and the residual projection read the same input: one GEMM
            width = self.intermediate.out_features
            both = nn.functional.linear(
                attended,
                torch.cat((self.intermediate.weight, self.output_residual.weight)),
                torch.cat((self.intermediate.bias, self.output_residual.bias)),
            )
            inner, residual = both[..., :width], both[..., width:]
        else:
            inner = self.intermediate(attended)
            residual = attended if self.residual_style == "identity" else None
        transformed = self.output(self.activation(inner))
        return self._norm(self.output_norm, residual, transformed), None


class AstromerEncoder(nn.Module):
    """The stack of :class:`AstromerLayer` blocks."""

    def __init__(self, config: AstromerConfig):
        super().__init__()
        self.layers = nn.ModuleList(AstromerLayer(config) for _ in range(config.num_hidden_layers))
        self.gradient_checkpointing = False


class AstromerReconstructionHead(nn.Module):
    """``LayerNorm`` then ``Linear(D -> 1)`` at every position: `(B, T, D)` -> `(B, T)`."""

    def __init__(self, config: AstromerConfig):
        super().__init__()
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.projection = nn.Linear(config.hidden_size, 1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.projection(self.norm(hidden_states)).squeeze(-1)


# ----------------------------------------------------------------------------------------------------------------------
# Pretrained models
# ----------------------------------------------------------------------------------------------------------------------
class AstromerPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading.

    Initialisation: the original's Keras defaults (Glorot-uniform kernels, zero biases, [MASK] token 0) when
    ``config.initializer_range`` is None, else kernels drawn from ``normal(0, initializer_range)``. LayerNorms start
    at (1, 0) and the γ weights of skip pooling at ``1 / (L + 1)`` either way.

    Loading: a checkpoint that lacks any weight of the encoder is refused (a truncated or foreign file would
    otherwise load as random weights with a warning); heads may be new, as when a classifier starts from a
    pretrained encoder.
    """

    config_class = AstromerConfig
    base_model_prefix = "astromer"
    main_input_name = "magnitudes"
    supports_gradient_checkpointing = True
    _no_split_modules = ["AstromerLayer"]
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        if isinstance(module, nn.Linear):
            if self.config.initializer_range is None:
                init.xavier_uniform_(module.weight)
            else:
                init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, AstromerPooledStandardizer):
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)
        elif isinstance(module, AstromerEmbeddings) and module.mask_token is not None:
            init.zeros_(module.mask_token)
        elif isinstance(module, AstromerForLightCurveClassification) and module.layer_weights is not None:
            init.constant_(module.layer_weights, 1.0 / module.layer_weights.numel())

    def _adjust_missing_and_unexpected_keys(self, loading_info) -> None:
        """transformers' adjustment of the missing and unexpected keys of a load (the keys to ignore), then a check
        that no encoder weight is missing."""
        super()._adjust_missing_and_unexpected_keys(loading_info)
        encoder_prefix = "" if isinstance(self, AstromerModel) else f"{self.base_model_prefix}."
        missing = sorted(key for key in loading_info.missing_keys if key.startswith(encoder_prefix))
        if missing:
            total = sum(1 for name, _ in self.named_parameters() if name.startswith(encoder_prefix))
            shown = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
            raise OSError(
                f"The checkpoint lacks {len(missing)} of the {total} encoder weights of {type(self).__name__} "
                f"({shown}): the weights file is truncated, empty or not an Astromer checkpoint. Re-save or "
                "re-download it (for a named release: `astromer download NAME --force`)."
            )

    def push_to_hub(self, repo_id: str, *, processor=None, metrics=None, **kwargs):
        """Push the model to the Hub with an Astromer model card (architecture, intended use and limits, evaluation
        results from ``metrics`` such as ``{"val/rmse": 0.15}``, how to load it, citations) and, when given, the
        ``processor`` configuration. ``private``, ``revision``, ``commit_message``, ``token`` and ``create_pr`` work
        as in transformers; other keyword arguments go to :func:`astromer_hf.model_card.render_model_card`. Where
        astromer_hf is not installed (code loaded with ``trust_remote_code``), the transformers default is used."""
        try:
            from astromer_hf.hub import push_model_to_hub
        except ImportError:
            return super().push_to_hub(repo_id, **kwargs)
        return push_model_to_hub(self, repo_id, processor=processor, metrics=metrics, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save as usual; when the code is saved too (``auto_map``), map every Astromer Auto class, not only the one
        of this head, so e.g. ``AutoModel`` loads a saved pretraining model with ``trust_remote_code=True``."""
        if self._auto_class is not None:
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **REMOTE_CODE_AUTO_MAP}
        return super().save_pretrained(save_directory, *args, **kwargs)


def _check_inputs(magnitudes: torch.Tensor, times: torch.Tensor, **masks: torch.Tensor | None) -> None:
    """Raise a clear error when the inputs do not share one `(B, T)` shape."""
    if magnitudes.dim() != 2:
        raise ValueError(f"`magnitudes` must have shape (batch, window), got {tuple(magnitudes.shape)}.")
    if times.shape != magnitudes.shape:
        raise ValueError(
            f"`times` must have the shape of `magnitudes` {tuple(magnitudes.shape)}, got {tuple(times.shape)}."
        )
    for name, value in masks.items():
        if value is not None and value.shape != magnitudes.shape:
            raise ValueError(
                f"`{name}` must have the shape of `magnitudes` {tuple(magnitudes.shape)}, got {tuple(value.shape)}."
            )
    if not torch.is_floating_point(magnitudes) or not torch.is_floating_point(times):
        raise ValueError("`magnitudes` and `times` must be floating-point tensors.")
    if magnitudes.shape[0] == 0 or magnitudes.shape[1] == 0:
        raise ValueError(
            f"`magnitudes` has shape {tuple(magnitudes.shape)}: there is nothing to encode (a batch needs at least "
            "one window of at least one position)."
        )
    attention_mask = masks.get("attention_mask")
    if attention_mask is not None and not torch.compiler.is_compiling():  # (compiled: no data-dependent branch)
        if bool(((attention_mask != 0) & (attention_mask != 1)).any()):
            values = attention_mask[(attention_mask != 0) & (attention_mask != 1)].unique()[:5].tolist()
            raise ValueError(f"`attention_mask` must be binary (1 real, 0 padding), got values such as {values}.")


def _squeeze_channel(x: torch.Tensor | None) -> torch.Tensor | None:
    """Accept the original's `(B, T, 1)` layout as well as `(B, T)`."""
    return x.squeeze(-1) if x is not None and x.dim() == 3 and x.shape[-1] == 1 else x


class AstromerModel(AstromerPreTrainedModel):
    """The bare Astromer encoder: per-observation embeddings of a light-curve window.

    Loading a checkpoint saved with a head (every released model is a pretraining checkpoint) drops the head
    silently: its weights are expected, not "unexpected".

    Inference on the CPU (no gradient) runs a large batch as consecutive slices of :attr:`inference_batch_size`
    windows, so that the activations of a slice stay in the caches (see :func:`default_inference_batch_size`); the
    outputs are those of the whole batch.

    Example::

        >>> from astromer_hf import AstromerConfig, AstromerModel
        >>> model = AstromerModel(AstromerConfig.from_preset("astromer-1"))
        >>> out = model(magnitudes=mags, times=times, attention_mask=attention_mask)  # mags, times: (B, T)
        >>> out.last_hidden_state.shape  # (B, T, 256)
    """

    _keys_to_ignore_on_load_unexpected = [r"^head\.", r"^classifier\.", r"^layer_weights$"]

    #: Windows per slice of a CPU inference batch: None picks it from the machine's caches
    #: (:func:`default_inference_batch_size`), 0 turns slicing off.
    inference_batch_size: int | None = None

    def __init__(self, config: AstromerConfig):
        super().__init__(config)
        self.embeddings = AstromerEmbeddings(config)
        self.encoder = AstromerEncoder(config)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        magnitudes: torch.Tensor,
        times: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        masked_positions: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        key_multiplicity: torch.Tensor | None = None,
        **kwargs,
    ) -> AstromerModelOutput:
        r"""
        Args:
            magnitudes (`torch.FloatTensor` of shape `(B, T)`):
                Window-centred magnitudes (`(B, T, 1)` is accepted too). Padding values are ignored.
            times (`torch.FloatTensor` of shape `(B, T)`):
                Window-centred observation times in days.
            attention_mask (`torch.Tensor` of shape `(B, T)`, *optional*):
                1 for real observations, 0 for padding. Defaults to all ones.
            masked_positions (`torch.Tensor` of shape `(B, T)`, *optional*):
                1 where the magnitude is hidden from the model (masked modelling). With Astromer 1 settings the
                value stays in the input and only the attention bias changes; with a [MASK] token it is replaced.
            output_attentions (`bool`, *optional*):
                Return the attention weights of every block (computed with eager attention).
            output_hidden_states (`bool`, *optional*):
                Return the input embedding and the output of every block.
            key_multiplicity (`torch.Tensor` of shape `(B, T)`, *optional*):
                How many identical positions each position stands for as a key (default 1; 0 removes it from
                attention): ``log(key_multiplicity)`` is added to its logits. With Astromer 1's additive mask every
                padded position of a window carries the same state in every layer, so a window of ``L`` observations
                padded to ``N`` gives the same outputs at its ``L`` real positions when its padding is one position
                of multiplicity ``N - L`` and further filler has multiplicity 0: ``astromer_hf.embed`` batches
                windows of similar length this way instead of computing ``N - L`` padded positions.
        """
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        magnitudes, times = _squeeze_channel(magnitudes), _squeeze_channel(times)
        attention_mask, masked_positions = _squeeze_channel(attention_mask), _squeeze_channel(masked_positions)
        key_multiplicity = _squeeze_channel(key_multiplicity)
        _check_inputs(magnitudes, times, attention_mask=attention_mask, masked_positions=masked_positions,
                      key_multiplicity=key_multiplicity)

        inputs = (magnitudes, times, attention_mask, masked_positions, key_multiplicity)
        step = self._inference_slice(magnitudes)
        if step is None:
            return self._encode(*inputs, output_attentions, output_hidden_states)
        parts = [
            self._encode(*(None if x is None else x[start : start + step] for x in inputs),
                         output_attentions, output_hidden_states)
            for start in range(0, magnitudes.shape[0], step)
        ]
        return AstromerModelOutput(
            last_hidden_state=torch.cat([part.last_hidden_state for part in parts]),
            hidden_states=_cat_layers([part.hidden_states for part in parts]),
            attentions=_cat_layers([part.attentions for part in parts]),
        )

    def _inference_slice(self, magnitudes: torch.Tensor) -> int | None:
        """Windows per slice for this call, or None to run the batch at once: slicing applies to CPU inference
        outside compilation and tracing (which need one graph), for batches larger than a slice."""
        if (torch.is_grad_enabled() or magnitudes.device.type != "cpu" or torch.compiler.is_compiling()
                or torch.jit.is_tracing()):
            return None
        step = self.inference_batch_size
        if step is None:
            step = default_inference_batch_size(self.config, magnitudes.shape[1])
        return step if 0 < step < magnitudes.shape[0] else None

    def _encode(
        self,
        magnitudes: torch.Tensor,
        times: torch.Tensor,
        attention_mask: torch.Tensor | None,
        masked_positions: torch.Tensor | None,
        key_multiplicity: torch.Tensor | None,
        output_attentions: bool,
        output_hidden_states: bool,
    ) -> AstromerModelOutput:
        concealed = torch.zeros_like(magnitudes, dtype=torch.bool)
        if attention_mask is not None:
            concealed |= attention_mask == 0
        if masked_positions is not None:
            concealed |= masked_positions != 0

        embedding = self.embeddings(magnitudes, times, concealed)
        mask = self._attention_mask(concealed, key_multiplicity, embedding.dtype, output_attentions)

        all_hidden_states = (embedding,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        hidden_states = self.embeddings.dropout(embedding)
        for layer in self.encoder.layers:
            hidden_states, weights = layer(hidden_states, mask, output_attentions)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if output_attentions:
                all_attentions += (weights,)
        return AstromerModelOutput(
            last_hidden_state=hidden_states, hidden_states=all_hidden_states, attentions=all_attentions
        )

    def _attention_mask(
        self, concealed: torch.Tensor, key_multiplicity: torch.Tensor | None, dtype: torch.dtype,
        output_attentions: bool,
    ) -> AttentionMask:
        """The :class:`AttentionMask` of a call: on the SDPA path Astromer 1's bias as a rank-one term and only
        per-key terms as a bias; on the eager path the dense bias of :func:`build_attention_bias`."""
        style = self.config.attention_mask_style
        key_bias = None
        if key_multiplicity is not None:
            floor = max(KEY_MASK_VALUE, torch.finfo(dtype).min)
            key_bias = torch.log(key_multiplicity.to(dtype)).clamp_min(floor)[:, None, None, :]
        if style == "additive_one" and _uses_fast_attention(self.config, output_attentions):
            query_extra, key_extra = additive_one_rank_one_terms(concealed, dtype)
            return AttentionMask(bias=key_bias, query_extra=query_extra, key_extra=key_extra)
        bias = build_attention_bias(concealed, style, dtype)
        if key_bias is not None:
            bias = (bias + key_bias).clamp_min(max(KEY_MASK_VALUE, torch.finfo(dtype).min))
        return AttentionMask(bias=bias)


def _cat_layers(per_slice: list[tuple[torch.Tensor, ...] | None]) -> tuple[torch.Tensor, ...] | None:
    """Per-layer outputs of consecutive batch slices, concatenated layer by layer."""
    if per_slice[0] is None:
        return None
    return tuple(torch.cat(layer) for layer in zip(*per_slice))


class AstromerForMaskedReconstruction(AstromerPreTrainedModel):
    """Astromer with the pretraining head: predicts the magnitude at every position; the loss is the masked RMSE over
    the probed positions (``docs/architecture.md``, "Heads")."""

    _keys_to_ignore_on_load_unexpected = [r"^classifier\.", r"^layer_weights$"]

    def __init__(self, config: AstromerConfig):
        super().__init__(config)
        self.astromer = AstromerModel(config)
        self.head = AstromerReconstructionHead(config)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        magnitudes: torch.Tensor,
        times: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        masked_positions: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        probed_positions: torch.Tensor | None = None,
        errors: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> AstromerMaskedReconstructionOutput:
        r"""
        Args:
            magnitudes, times, attention_mask, masked_positions: as in :meth:`AstromerModel.forward`.
            labels (`torch.FloatTensor` of shape `(B, T)`, *optional*):
                True window-centred magnitudes (before any masking substitution). Enables `loss` and `r2`.
            probed_positions (`torch.Tensor` of shape `(B, T)`, *optional*):
                1 where the position enters the loss. Defaults to `masked_positions`, or to every real observation
                when nothing is masked. Padding never enters the loss.
            errors (`torch.FloatTensor` of shape `(B, T)`, *optional*):
                Raw magnitude errors; required when `config.loss_weighting == "inverse_error"`.
        """
        attention_mask, masked_positions = _squeeze_channel(attention_mask), _squeeze_channel(masked_positions)
        outputs = self.astromer(
            magnitudes,
            times,
            attention_mask=attention_mask,
            masked_positions=masked_positions,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        reconstruction = self.head(outputs.last_hidden_state)

        loss = r2 = window_mse = None
        if labels is not None:
            labels, probed_positions = _squeeze_channel(labels), _squeeze_channel(probed_positions)
            errors = _squeeze_channel(errors)
            for name, value in (("labels", labels), ("probed_positions", probed_positions), ("errors", errors)):
                if value is not None and value.shape != reconstruction.shape:
                    raise ValueError(
                        f"`{name}` must have the shape of `magnitudes` {tuple(reconstruction.shape)}, "
                        f"got {tuple(value.shape)}."
                    )
            chosen = probed_positions if probed_positions is not None else masked_positions
            loss_mask = torch.ones_like(reconstruction, dtype=torch.bool) if chosen is None else chosen != 0
            if attention_mask is not None:
                loss_mask &= attention_mask != 0
            weights = None
            if self.config.loss_weighting == "inverse_error":
                if errors is None:
                    raise ValueError("`errors` are required when `config.loss_weighting` is 'inverse_error'.")
                weights = inverse_error_weights(errors.to(reconstruction.dtype), loss_mask)
            targets = labels.to(reconstruction.dtype)
            per_window, has_probe = masked_window_mse(reconstruction, targets, loss_mask, weights)
            if not torch.compiler.is_compiling() and not bool(has_probe.any()):  # (compiled: no data-dependent branch)
                raise ValueError("No position enters the loss: every window has an empty `loss_mask`.")
            # = masked_rmse(reconstruction, targets, ...), without a data-dependent shape
            loss = torch.sqrt((per_window * has_probe).sum() / has_probe.sum())
            window_mse = per_window.masked_fill(~has_probe, float("nan"))
            r2 = masked_r2(reconstruction, targets, loss_mask)

        return AstromerMaskedReconstructionOutput(
            loss=loss,
            r2=r2,
            window_mse=window_mse,
            reconstruction=reconstruction,
            last_hidden_state=outputs.last_hidden_state,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class AstromerPooledStandardizer(nn.BatchNorm1d):
    """Per-channel standardisation of pooled embeddings `(N, D)` (``config.classifier_standardize``): a
    ``BatchNorm1d`` without learnt scale or shift. In training it uses the batch's statistics and updates the running
    ones, except for a batch of one row (a one-curve batch), which has no spread and is standardised with the running
    statistics instead of failing; at inference it uses the running statistics."""

    def __init__(self, config: AstromerConfig):
        super().__init__(config.hidden_size, eps=config.layer_norm_eps, affine=False)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        if self.training and pooled.shape[0] == 1:
            return nn.functional.batch_norm(pooled, self.running_mean, self.running_var, training=False, eps=self.eps)
        return super().forward(pooled)


class AstromerForLightCurveClassification(AstromerPreTrainedModel):
    """Astromer with a classification (or regression) head on pooled window embeddings (Astromer 2's ``skip_avg_mlp``).

    Pooling (``config.classifier_pooling``): ``"mean"`` or ``"max"`` over the real observations of the last layer, or
    ``"skip"``: with ``z_l`` the masked mean of the input embedding (``l = 0``) and of every block output, and a
    trainable ``gamma`` of size ``L + 1`` initialised to ``1 / (L + 1)``, ``z = mean_l(softmax(gamma)_l * z_l)``.
    The head is ``Linear -> ReLU`` for each of ``config.classifier_hidden_sizes`` (1024, 512, 256), then
    ``LayerNorm`` and ``Linear(-> num_labels)`` (``classifier``), with, when ``config.classifier_standardize``, an
    :class:`AstromerPooledStandardizer` before it (``pooled_norm``, a module of its own so that the MLP's weight
    names do not depend on the setting); :meth:`classify` applies both. With ``config.freeze_encoder`` the encoder
    is not trained. In training, ``config.classifier_dropout`` drops channels of the MLP's input.

    The loss follows ``config.problem_type`` as in transformers' sequence-classification heads: ``"regression"``
    (mean squared error; inferred when ``num_labels == 1``), ``"single_label_classification"`` (cross-entropy on
    integer labels; inferred for integer labels) or ``"multi_label_classification"`` (binary cross-entropy with
    logits on float ``(B, C)`` labels; inferred for float labels).
    """

    # A pretraining checkpoint's reconstruction head has no place here; the classifier head is new when loading
    # one (the usual case: the encoder is what is pretrained).
    _keys_to_ignore_on_load_unexpected = [r"^head\."]
    _keys_to_ignore_on_load_missing = [r"^classifier\.", r"^layer_weights$", r"^pooled_norm\."]

    def __init__(self, config: AstromerConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.astromer = AstromerModel(config)
        self.layer_weights = (
            nn.Parameter(torch.empty(config.num_hidden_layers + 1)) if config.classifier_pooling == "skip" else None
        )
        self.pooled_norm = AstromerPooledStandardizer(config) if config.classifier_standardize else None
        layers: list[nn.Module] = []
        width = config.hidden_size
        for size in config.classifier_hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers += [nn.LayerNorm(width, eps=config.layer_norm_eps), nn.Linear(width, config.num_labels)]
        self.classifier = nn.Sequential(*layers)
        self.post_init()
        self.freeze_encoder(config.freeze_encoder)

    def freeze_encoder(self, freeze: bool = True) -> None:
        """Stop (or restart) training the encoder: sets ``config.freeze_encoder`` and the encoder's
        ``requires_grad``. A frozen encoder also runs without building a graph and in eval mode (see :meth:`train`);
        the head always trains."""
        self.config.freeze_encoder = freeze
        self.astromer.requires_grad_(not freeze)
        self.astromer.train(self.training and not freeze)

    def train(self, mode: bool = True):
        """As :meth:`torch.nn.Module.train`, except that a frozen encoder (``config.freeze_encoder``) stays frozen and
        in eval mode: its weights do not learn, so it is a fixed feature extractor and the head trains on the very
        features it is given at inference (encoder dropout off).

        ``from_pretrained`` creates the loaded parameters anew (trainable) and ends with ``model.eval()``, as its
        documentation says, so this is also where a loaded model takes its frozen state from its config.
        """
        super().train(mode)
        if self.config.freeze_encoder:
            self.astromer.requires_grad_(False)
            self.astromer.eval()
        return self

    def pool(
        self, outputs: AstromerModelOutput, attention_mask: torch.Tensor, curve_index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Pooled embedding from the encoder outputs and the `(B, T)` attention mask: one per window `(B, D)`, or,
        with `curve_index` `(B,)`, one per curve `(C, D)` over all the real observations of its windows."""
        pooling = self.config.classifier_pooling
        n_curves = None if curve_index is None else int(curve_index.max()) + 1
        if pooling == "mean":
            return masked_mean(outputs.last_hidden_state, attention_mask, curve_index, n_curves)
        if pooling == "max":
            return masked_max(outputs.last_hidden_state, attention_mask, curve_index, n_curves)
        per_layer = torch.stack(
            [masked_mean(states, attention_mask, curve_index, n_curves) for states in outputs.hidden_states], dim=0
        )
        gamma = torch.softmax(self.layer_weights, dim=0).to(per_layer.dtype)
        return (gamma[:, None, None] * per_layer).mean(dim=0)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """The head's logits `(N, num_labels)` from pooled embeddings `(N, D)`: standardised when
        ``config.classifier_standardize``, then, in training, dropout at ``config.classifier_dropout``, then the MLP."""
        if self.pooled_norm is not None:
            pooled = self.pooled_norm(pooled)
        return self.classifier(nn.functional.dropout(pooled, self.config.classifier_dropout, self.training))

    def problem_type(self, labels: torch.Tensor) -> str:
        """``config.problem_type``, or the one inferred from ``num_labels`` and the labels' dtype."""
        if self.config.problem_type is not None:
            return self.config.problem_type
        if self.num_labels == 1:
            return "regression"
        if not torch.is_floating_point(labels):
            return "single_label_classification"
        return "multi_label_classification"

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss of ``logits`` `(B, C)` against ``labels`` for :meth:`problem_type`; clear errors for labels of
        the wrong shape or range."""
        batch = logits.shape[0]
        problem = self.problem_type(labels)
        if problem == "regression":
            if labels.shape not in ((batch,), (batch, self.num_labels)):
                raise ValueError(f"regression `labels` must have shape ({batch},) or ({batch}, {self.num_labels}), "
                                 f"got {tuple(labels.shape)}.")
            targets = labels.to(logits.dtype)
            return nn.functional.mse_loss(logits.squeeze(-1) if self.num_labels == 1 else logits,
                                          targets.squeeze(-1) if self.num_labels == 1 else targets)
        if problem == "single_label_classification":
            if labels.shape != (batch,):
                raise ValueError(f"`labels` must have shape ({batch},), got {tuple(labels.shape)}.")
            if torch.is_floating_point(labels) and not torch.equal(labels, labels.round()):
                raise ValueError("single-label `labels` must be class indices (integers).")
            if labels.min() < 0 or labels.max() >= self.num_labels:
                raise ValueError(f"`labels` must lie in [0, {self.num_labels}), got values {labels.unique().tolist()}.")
            return nn.functional.cross_entropy(logits, labels.long())
        if problem == "multi_label_classification":
            if labels.shape != logits.shape:
                raise ValueError(f"multi-label `labels` must have shape {tuple(logits.shape)}, got {tuple(labels.shape)}.")
            return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        raise ValueError(
            f"Unknown `config.problem_type` {problem!r}; use 'regression', 'single_label_classification' or "
            "'multi_label_classification'."
        )

    @can_return_tuple
    def forward(
        self,
        magnitudes: torch.Tensor,
        times: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        curve_index: torch.Tensor | None = None,
        **kwargs,
    ) -> AstromerClassificationOutput:
        r"""
        Args:
            magnitudes, times, attention_mask: as in :meth:`AstromerModel.forward`.
            labels (`torch.Tensor`, *optional*):
                Class indices `(N,)` in `[0, num_labels)` (single-label), floats `(N, num_labels)` in [0, 1]
                (multi-label) or targets `(N,)` / `(N, num_labels)` (regression), with `N` the windows, or the curves
                when `curve_index` is given; enables the `loss` (see the class docstring).
            output_attentions, output_hidden_states: as in :meth:`AstromerModel.forward`.
            curve_index (`torch.LongTensor` of shape `(B,)`, *optional*):
                The curve (numbered from 0) each window belongs to, as the processor returns it. With it, the windows
                of a curve are pooled together and the head gives one prediction per curve: `logits` and
                `pooled_output` have one row per curve.
        """
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        needs_all_layers = self.config.classifier_pooling == "skip"
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.freeze_encoder):
            outputs = self.astromer(
                magnitudes,
                times,
                attention_mask=attention_mask,
                output_attentions=output_attentions,
                output_hidden_states=bool(output_hidden_states) or needs_all_layers,
                return_dict=True,
            )
        magnitudes = _squeeze_channel(magnitudes)
        if attention_mask is None:
            attention_mask = torch.ones_like(magnitudes, dtype=torch.long)
        if curve_index is not None and curve_index.shape != magnitudes.shape[:1]:
            raise ValueError(f"`curve_index` must have shape ({magnitudes.shape[0]},), got {tuple(curve_index.shape)}.")
        pooled = self.pool(outputs, _squeeze_channel(attention_mask), curve_index)
        logits = self.classify(pooled)
        loss = self.loss(logits, labels) if labels is not None else None

        return AstromerClassificationOutput(
            loss=loss,
            logits=logits,
            pooled_output=pooled,
            hidden_states=outputs.hidden_states if output_hidden_states else None,
            attentions=outputs.attentions,
        )


# Saved folders name these classes in their `auto_map` (see REMOTE_CODE_AUTO_MAP), so they load with
# `trust_remote_code=True` where this package is not installed.
AstromerModel.register_for_auto_class("AutoModel")
AstromerForMaskedReconstruction.register_for_auto_class("AutoModelForPreTraining")
AstromerForLightCurveClassification.register_for_auto_class("AutoModelForSequenceClassification")

__all__ = [
    "AstromerPreTrainedModel",
    "AstromerModel",
    "AstromerForMaskedReconstruction",
    "AstromerForLightCurveClassification",
    "AstromerModelOutput",
    "AstromerMaskedReconstructionOutput",
    "AstromerClassificationOutput",
]
