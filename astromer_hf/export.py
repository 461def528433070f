"""Export an Astromer encoder to ONNX: ``astromer export onnx MODEL --out FILE.onnx``.

The exported graph is the encoder of any Astromer model (a release name, a ``save_pretrained`` folder, a Hub id, or a
model instance of any head): inputs ``magnitudes``, ``times`` (float32 ``(batch, length)``, window-centred, as the
processor gives them) and ``attention_mask`` (int64 ``(batch, length)``, 1 real, 0 padding); output
``last_hidden_state`` (float32 ``(batch, length, hidden)``), the per-observation embeddings. Batch and length are
dynamic axes. Pooling and the curve-to-window preprocessing stay on the caller's side
(:class:`~astromer_hf.AstromerProcessor`, or :func:`astromer_hf.embed` for the whole path in PyTorch).

Astromer 1's additive mask lets padding change the outputs (``docs/architecture.md``): feed its windows padded to the
model's window size, as the released weights expect; a shorter length gives what the model gives that input in
PyTorch, not what it gives the window padded.

>>> from astromer_hf.export import export_onnx
>>> path = export_onnx("astromer-1-macho", "astromer-1.onnx")
>>> import onnxruntime
>>> session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
>>> (states,) = session.run(None, {"magnitudes": mags, "times": times, "attention_mask": mask})
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: Names of the exported graph's inputs and output.
INPUT_NAMES = ("magnitudes", "times", "attention_mask")
OUTPUT_NAMES = ("last_hidden_state",)
#: ONNX opset of the export.
DEFAULT_OPSET = 18


class EncoderForExport(nn.Module):
    """The encoder as a function of three tensors returning one: what the exporters trace."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, magnitudes: torch.Tensor, times: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(magnitudes, times, attention_mask=attention_mask, return_dict=True).last_hidden_state


def export_onnx(
    model: Any,
    out: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
    example_batch: int = 2,
) -> Path:
    """Write ``model``'s encoder to ``out`` as an ONNX graph with dynamic batch and length axes; returns the path.

    Args:
        model: a release name, ``save_pretrained`` folder or Hub id (its encoder is loaded), or an Astromer model
            instance of any head (its encoder is exported; the model is left as it was).
        out: the ``.onnx`` file to write (its folder is created).
        opset: the ONNX opset.
        overwrite: replace ``out`` if it exists.
        example_batch: windows of the example input the graph is traced with (any size works afterwards).

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is False.
        ImportError: the ``onnx`` package is not installed (``pip install onnx``; ``onnxruntime`` runs the graph).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    try:
        import onnx
    except ImportError as error:
        raise ImportError("exporting to ONNX needs the onnx package: pip install onnx onnxruntime") from error
    from .embedding import load_encoder

    encoder, _, _ = load_encoder(model)
    was_training = encoder.training
    parameter = next(encoder.parameters())
    wrapper = EncoderForExport(encoder).eval()
    window = int(getattr(encoder.config, "window_size", None) or 200)
    generator = torch.Generator().manual_seed(0)
    times = torch.cumsum(torch.rand(example_batch, window, generator=generator), dim=1)
    example = (
        torch.randn(example_batch, window, generator=generator, device="cpu").to(parameter.device),
        (times - times.mean(dim=1, keepdim=True)).to(parameter.device),
        torch.ones(example_batch, window, dtype=torch.long, device=parameter.device),
    )
    example[2][0, window // 2:] = 0  # one padded window: the traced graph must not specialise on a mask of ones
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        exporter_log = logging.getLogger("torch.onnx")
        level = exporter_log.level
        exporter_log.setLevel(logging.ERROR)  # the exporter's notes on its own internals (optional packages ...)
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _export(wrapper, example, partial, opset)
        finally:
            exporter_log.setLevel(level)
        onnx.checker.check_model(str(partial))
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
        encoder.train(was_training)
    return out


def _export(wrapper: nn.Module, example: tuple[torch.Tensor, ...], path: Path, opset: int) -> None:
    """torch's ONNX export with the batch and length axes dynamic, in one self-contained file."""
    batch, length = torch.export.Dim("batch", min=1), torch.export.Dim("length", min=1)
    axes = {0: batch, 1: length}
    program = torch.onnx.export(
        wrapper, example, dynamo=True, input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
        dynamic_shapes={name: axes for name in INPUT_NAMES}, opset_version=opset, external_data=False,
        verbose=False,
    )
    program.save(str(path), external_data=False)


__all__ = ["export_onnx", "EncoderForExport", "INPUT_NAMES", "OUTPUT_NAMES", "DEFAULT_OPSET"]
