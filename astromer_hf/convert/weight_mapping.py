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

:func:`plan_mapping` decides all of this from names and shapes alone, so a converter can check a checkpoint before it
reads any values; :func:`to_parameter` then turns each value into a float32 tensor: integer and other float dtypes are
cast (and reported), NaN and infinities are refused.
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


def _parameter_shape(target: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape a variable takes as parameter ``target``: Keras Dense kernels ``[in, out]`` are transposed."""
    return tuple(reversed(shape)) if target.endswith(".weight") and len(shape) == 2 else tuple(shape)


def plan_mapping(
    shapes: Mapping[str, tuple[int, ...]], expected: Mapping[str, torch.Size], hidden_size: int, intermediate_size: int
) -> tuple[dict[str, str], list[str]]:
    """Which original variable becomes which parameter, decided from names and shapes alone (no values read).

    Args:
        shapes: original variable name -> shape, as listed by the checkpoint's index.
        expected: parameter name -> shape of the target model (its ``state_dict``).
        hidden_size, intermediate_size: model widths, used to tell the two feed-forward layers apart.

    Returns:
        ``{original name: parameter name}`` covering every key of ``expected`` with matching shapes, and the list
        of skipped bookkeeping names (optimizer slots ...).

    Raises:
        ValueError: listing unexpected variables (no rule matches, or the model has no such parameter), parameters
        left without a source, variables claimed twice, and shape mismatches.
    """
    plan: dict[str, str] = {}
    sources: dict[str, str] = {}
    skipped, unexpected, duplicated, mismatched = [], [], [], {}
    for raw_name, shape in shapes.items():
        name = normalise_name(raw_name)
        if _SKIPPED.search(name):
            skipped.append(raw_name)
            continue
        target = target_name(name, _Shaped(tuple(shape)), hidden_size, intermediate_size)
        if target is None or target not in expected:
            unexpected.append(raw_name)
            continue
        if target in sources:
            duplicated.append(f"{target} <- {sources[target]} and {raw_name}")
            continue
        shape = _parameter_shape(target, tuple(shape))
        if shape != tuple(expected[target]):
            mismatched[target] = f"{raw_name} {shape} -> {target} {tuple(expected[target])}"
            continue
        plan[raw_name], sources[target] = target, raw_name
    missing = sorted(set(expected) - set(sources) - set(mismatched))
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
    return plan, skipped


class _Shaped:
    """Stands in for an array where only the shape is known (:func:`target_name` only looks at shapes)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape


def check_dtypes(dtypes: Mapping[str, np.dtype]) -> None:
    """Refuse variables that cannot hold weights (complex, boolean, strings ...), naming them."""
    refused = [f"{name} ({np.dtype(dtype)})" for name, dtype in dtypes.items() if np.dtype(dtype).kind not in "fiu"]
    if refused:
        raise ValueError(
            "Cannot convert the checkpoint: weights must be real numbers, but these tensors are not: "
            + ", ".join(refused)
        )


def to_parameter(raw_name: str, array: np.ndarray, target: str) -> tuple[torch.Tensor, str | None]:
    """One original variable as the float32 tensor of parameter ``target`` (transposed if a Dense kernel).

    Returns:
        The tensor, and a note when the stored dtype was not float32 (``"name: int32 -> float32"``).

    Raises:
        ValueError: the values hold NaN or infinities (also after casting to float32), naming the tensor and counts.
    """
    array = np.asarray(array)
    check_dtypes({raw_name: array.dtype})
    with np.errstate(over="ignore", invalid="ignore"):  # overflowing values become inf and are refused below
        value = np.array(array, dtype=np.float32, copy=True)
    not_finite = ~np.isfinite(value)
    if not_finite.any():
        nan = int(np.count_nonzero(np.isnan(value)))
        cast = f" (after casting {array.dtype} to float32)" if array.dtype != np.float32 else ""
        raise ValueError(
            f"Cannot convert the checkpoint: tensor {raw_name} holds {nan} NaN and "
            f"{int(np.count_nonzero(not_finite)) - nan} infinite values of {value.size}{cast}; weights must be finite."
        )
    note = None if array.dtype == np.float32 else f"{raw_name}: {array.dtype} -> float32"
    tensor = torch.from_numpy(value)
    if target.endswith(".weight") and tensor.dim() == 2:
        tensor = tensor.T.contiguous()  # Keras Dense kernels are [in, out]; torch Linear weights are [out, in]
    return tensor, note


def map_original_weights(
    tensors: Mapping[str, np.ndarray], expected: Mapping[str, torch.Size], hidden_size: int, intermediate_size: int
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Rename and transpose original variables into a state dict (:func:`plan_mapping`, then :func:`to_parameter`).

    Returns:
        The state dict (every key of ``expected``, every shape checked), the skipped bookkeeping names, and one note
        per variable that was cast to float32.

    Raises:
        ValueError: see :func:`plan_mapping` and :func:`to_parameter`.
    """
    plan, skipped = plan_mapping({n: np.shape(a) for n, a in tensors.items()}, expected, hidden_size, intermediate_size)
    check_dtypes({name: np.asarray(tensors[name]).dtype for name in plan})
    state, notes = {}, []
    for raw_name, target in plan.items():
        state[target], note = to_parameter(raw_name, tensors[raw_name], target)
        if note:
            notes.append(note)
    return state, skipped, notes
