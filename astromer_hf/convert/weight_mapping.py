"""Map the variables of an original TensorFlow/Keras Astromer checkpoint onto :class:`AstromerForMaskedReconstruction`.

The original code names its variables after Python attributes (tensor-bundle checkpoints) or Keras layer names
(``.h5`` files), and the two released generations use different names for the same parts:

=====================  ==================================  ==================================  ============================
part                   Astromer 1 (``macho_a0``)           Astromer 2 (``src/layers``)          this port
=====================  ==================================  ==================================  ============================
[MASK] token           --                                  ``msk_token``                       ``embeddings.mask_token``
magnitude projection   ``inp_transform``                   ``encoder/inp_transform``           ``embeddings.magnitude_projection``
block ``i``            ``enc_layers/i``                    ``att_layer_i``                     ``encoder.layers.i``
Q / K / V / output     ``mha/wq|wk|wv|dense``              ``mha/WQ|WK|WV|attmerge``           ``attention.q|k|v|out_proj``
feed-forward           ``ffn/layer_with_weights-0|1``      ``ffn`` (a Keras Sequential)        ``intermediate``, ``output``
layer norms            ``layernorm1``, ``layernorm2``      same                                ``attention_norm``, ``output_norm``
projected residuals    --                                  ``reshape_leak_1``, ``_2``          ``attention|output_residual``
head                   ``bn_0``, ``reg_layer``             ``regression/bn_0|reconstruction``  ``head.norm``, ``head.projection``
=====================  ==================================  ==================================  ============================

Matching is done on these name fragments, so both the object-graph paths of tensor bundles
(``layer_with_weights-0/enc_layers/0/mha/wq/kernel/.ATTRIBUTES/VARIABLE_VALUE``) and the layer paths of ``.h5`` files
(``encoder/att_layer_0/mha/WQ/kernel:0``) resolve. Keras ``Dense`` kernels are ``[in, out]`` and are transposed for
``torch.nn.Linear``. Optimizer slots and checkpoint bookkeeping are skipped; any other variable that matches no
rule, and any model parameter left without a source, is an error that lists the names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import torch

# Bookkeeping entries of a checkpoint that are not model weights.
_SKIPPED = re.compile(r"(^|/)(\.OPTIMIZER_SLOT|optimizer|save_counter|_CHECKPOINTABLE_OBJECT_GRAPH|iter)(/|$)|\.OPTIMIZER_SLOT")
_LAYER = re.compile(r"(?:enc_layers/|att_layer_)(\d+)(?:/|$)")
_ATTENTION = {"wq": "q_proj", "wk": "k_proj", "wv": "v_proj", "dense": "out_proj", "attmerge": "out_proj"}
_NORM_PARAM = {"gamma": "weight", "beta": "bias"}
_DENSE_PARAM = {"kernel": "weight", "bias": "bias"}


def normalise_name(name: str) -> str:
    """Strip the tensor-bundle suffix ``/.ATTRIBUTES/VARIABLE_VALUE`` and the ``:0`` of Keras weight names."""
    name = name.removesuffix("/.ATTRIBUTES/VARIABLE_VALUE")
    return re.sub(r":\d+$", "", name)


def _ffn_target(name: str, array: np.ndarray, hidden_size: int, intermediate_size: int) -> str | None:
    """Which feed-forward Linear (``intermediate`` or ``output``) a Keras ``ffn`` variable belongs to.

    When the widths differ the shape decides (kernel ``[D, F]`` / bias ``[F]`` feed the intermediate layer); when they
    are equal only the ``layer_with_weights-N`` index of a tensor bundle can tell, and ``.h5`` names stay unresolved.
    """
    if hidden_size != intermediate_size:
        width = array.shape[-1]
        return "intermediate" if width == intermediate_size else "output" if width == hidden_size else None
    indexed = re.search(r"/ffn/layer_with_weights-([01])/", name)
    return None if indexed is None else ("intermediate", "output")[int(indexed.group(1))]


def target_name(name: str, array: np.ndarray, hidden_size: int, intermediate_size: int) -> str | None:
    """The parameter name of :class:`AstromerForMaskedReconstruction` for one original variable, or ``None``."""
    tail = name.rsplit("/", 1)[-1]
    if name.endswith("msk_token"):
        return "astromer.embeddings.mask_token"
    if re.search(r"(^|/)inp_transform/(kernel|bias)$", name):
        return f"astromer.embeddings.magnitude_projection.{_DENSE_PARAM[tail]}"
    if re.search(r"(^|/)bn_0/(gamma|beta)$", name):
        return f"head.norm.{_NORM_PARAM[tail]}"
    if re.search(r"(^|/)(reg_layer|reconstruction)/(kernel|bias)$", name):
        return f"head.projection.{_DENSE_PARAM[tail]}"
    layer = _LAYER.search(name)
    if layer is None:
        return None
    prefix = f"astromer.encoder.layers.{layer.group(1)}"
    if match := re.search(r"/mha/(wq|wk|wv|dense|attmerge)/(kernel|bias)$", name, flags=re.IGNORECASE):
        return f"{prefix}.attention.{_ATTENTION[match.group(1).lower()]}.{_DENSE_PARAM[tail]}"
    if match := re.search(r"/layernorm([12])/(gamma|beta)$", name):
        norm = "attention_norm" if match.group(1) == "1" else "output_norm"
        return f"{prefix}.{norm}.{_NORM_PARAM[tail]}"
    if match := re.search(r"/reshape_leak_([12])/(kernel|bias)$", name):
        residual = "attention_residual" if match.group(1) == "1" else "output_residual"
        return f"{prefix}.{residual}.{_DENSE_PARAM[tail]}"
    if "/ffn/" in name and tail in _DENSE_PARAM:
        which = _ffn_target(name, array, hidden_size, intermediate_size)
        return None if which is None else f"{prefix}.{which}.{_DENSE_PARAM[tail]}"
    return None


def map_original_weights(
    tensors: Mapping[str, np.ndarray], expected: Mapping[str, torch.Size], hidden_size: int, intermediate_size: int
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename and transpose original variables into a state dict.

    Args:
        tensors: original variable name -> array, as read from the checkpoint.
        expected: parameter name -> shape of the target model (its ``state_dict``).
        hidden_size, intermediate_size: model widths, used to tell the two feed-forward layers apart.

    Returns:
        The state dict (every key of ``expected``, every shape checked) and the list of skipped bookkeeping names.

    Raises:
        ValueError: listing unexpected variables (no rule matches, or the model has no such parameter), parameters
        left without a source, variables claimed twice, and shape mismatches.
    """
    state: dict[str, torch.Tensor] = {}
    sources: dict[str, str] = {}
    skipped, unexpected, duplicated, mismatched = [], [], [], {}
    for raw_name, array in tensors.items():
        name = normalise_name(raw_name)
        if _SKIPPED.search(name):
            skipped.append(raw_name)
            continue
        target = target_name(name, np.asarray(array), hidden_size, intermediate_size)
        if target is None or target not in expected:
            unexpected.append(raw_name)
            continue
        if target in state:
            duplicated.append(f"{target} <- {sources[target]} and {raw_name}")
            continue
        value = torch.from_numpy(np.array(array, dtype=np.float32, copy=True))
        if target.endswith(".weight") and value.dim() == 2:
            value = value.T.contiguous()  # Keras Dense kernels are [in, out]; torch Linear weights are [out, in]
        if tuple(value.shape) != tuple(expected[target]):
            mismatched[target] = f"{raw_name} {tuple(value.shape)} -> {target} {tuple(expected[target])}"
            continue
        state[target], sources[target] = value, raw_name
    missing = sorted(set(expected) - set(state) - set(mismatched))
    problems = []
    if unexpected:
        problems.append("unexpected tensors (no matching model parameter): " + ", ".join(sorted(unexpected)))
    if duplicated:
        problems.append("tensors mapped twice: " + "; ".join(duplicated))
    if mismatched:
        problems.append("shape mismatches: " + "; ".join(mismatched.values()))
    if missing:
        problems.append("model parameters missing from the checkpoint: " + ", ".join(missing))
    if problems:
        raise ValueError("Cannot convert the checkpoint:\n  - " + "\n  - ".join(problems))
    return state, skipped
