"""Model cards for Astromer folders: YAML front matter the Hub indexes, and the sections a user needs.

:func:`render_model_card` is the one renderer: the converter, ``push_to_hub``, the training callbacks and
``astromer publish-release`` all call it. The front matter carries ``license``, ``library_name``, tags, ``datasets``,
``metrics``, ``base_model`` and a ``model-index`` with the evaluation results; the body has a description, intended
use and limits, training data and recipe, evaluation results, how to load and embed, and BibTeX.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .citations import CITATION_ASTROMER_1, CITATION_ASTROMER_2, SOFTWARE_CITATION
from .configuration_astromer import AstromerConfig

#: Metrics a card reports, with their display names; keys as logged during training (``val/rmse`` ...).
METRIC_NAMES = {
    "rmse": "masked RMSE [mag]",
    "r2": "R²",
    "baseline_rmse": "RMSE of the window mean [mag]",
    "f1_macro": "macro F1",
    "accuracy": "accuracy",
    "loss": "loss",
}
_HF_METRIC_TYPES = {"rmse": "rmse", "r2": "r_squared", "f1_macro": "f1", "accuracy": "accuracy"}


def architecture_summary(config: AstromerConfig, n_parameters: int | None = None) -> str:
    """One paragraph describing the encoder of ``config``."""
    generation = _generation(config)
    text = (
        f"{generation}-style encoder: {config.num_hidden_layers} attention blocks, width {config.hidden_size}, "
        f"{config.num_attention_heads} heads, feed-forward {config.intermediate_size} ({config.hidden_act}), "
        f"residuals `{config.residual_style}`, attention mask `{config.attention_mask_style}`, "
        f"[MASK] token {'yes' if config.use_mask_token else 'no'}, windows of {config.window_size} observations"
    )
    return text + (f"; {n_parameters:,} parameters." if n_parameters is not None else ".")


def _generation(config: AstromerConfig) -> str:
    return "Astromer 1" if config.residual_style == "none" and config.attention_mask_style == "additive_one" else "Astromer 2"


def _split_metrics(metrics: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """``{"val/rmse": 0.1, "test/r2": 0.7}`` -> ``{"val": {"rmse": 0.1}, "test": {"r2": 0.7}}`` (known metrics only)."""
    out: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        split, _, name = key.partition("/")
        if name in METRIC_NAMES and split in ("train", "val", "test"):
            out.setdefault(split, {})[name] = float(value)
    return out


def render_model_card(
    config: AstromerConfig,
    *,
    title: str,
    description: str,
    repo_id: str | None = None,
    n_parameters: int | None = None,
    metrics: Mapping[str, float] | None = None,
    dataset_name: str = "light curves",
    datasets: Sequence[str] = (),
    training: str | None = None,
    provenance: str | None = None,
    base_model: str | None = None,
    license: str = "mit",
    extra_tags: Sequence[str] = (),
) -> ModelCard:
    """A :class:`huggingface_hub.ModelCard` for an Astromer folder.

    Args:
        config: the model's configuration.
        title: the card's heading.
        description: what the model is (a paragraph).
        repo_id: where the model is published (used in the loading example); None shows a local path.
        n_parameters: parameter count to report.
        metrics: logged metrics (``{"val/rmse": ..., "test/f1_macro": ...}``); the known ones become the card's
            evaluation results and its ``model-index``.
        dataset_name: what the metrics were measured on (for ``model-index``).
        datasets: Hub dataset ids the model was trained on (front matter).
        training: the training data and recipe (markdown).
        provenance: where the weights come from (markdown; the converter's source files and checksums).
        base_model: the model this one was fine-tuned from.
        license: SPDX id.
        extra_tags: tags added to the defaults.
    """
    generation = _generation(config)
    by_split = _split_metrics(metrics or {})
    task = "light-curve classification" if config.architectures and "Classification" in config.architectures[0] else \
        "masked light-curve reconstruction"
    eval_results = [
        EvalResult(
            task_type="time-series-modeling" if "reconstruction" in task else "tabular-classification",
            task_name=task,
            dataset_type=dataset_name,
            dataset_name=dataset_name,
            dataset_split={"val": "validation"}.get(split, split),
            metric_type=_HF_METRIC_TYPES[name],
            metric_name=METRIC_NAMES[name],
            metric_value=round(value, 6),
        )
        for split, values in by_split.items()
        for name, value in values.items()
        if name in _HF_METRIC_TYPES
    ]
    data = ModelCardData(
        license=license,
        library_name="transformers",
        tags=["astronomy", "light-curves", "time-series", "astromer", generation.lower().replace(" ", "-"),
              *extra_tags],
        pipeline_tag="feature-extraction",
        datasets=list(datasets) or None,
        metrics=sorted({_HF_METRIC_TYPES[n] for values in by_split.values() for n in values if n in _HF_METRIC_TYPES})
        or None,
        base_model=base_model,
        model_name=title if eval_results else None,
        eval_results=eval_results or None,
    )
    location = repo_id or "path/to/this/folder"
    sections = [
        f"# {title}",
        description,
        f"## Model\n\n{architecture_summary(config, n_parameters)} Time enters through a sinusoidal encoding of the "
        "real observation times (days, centred per window); each magnitude is embedded linearly. The encoder gives "
        f"one {config.hidden_size}-wide embedding per observation.",
        "## Intended use and limits\n\n"
        "* Embeddings of single-band optical light curves (time in days, magnitude, error) for classification, "
        "similarity search, anomaly detection; masked reconstruction of held-out observations.\n"
        f"* Inputs are windows of at most {config.window_size} observations, centred per window (the processor does "
        "this); longer curves are cut into several windows.\n"
        "* Magnitudes only: not fluxes; one band at a time. Surveys whose cadence or noise differ much from the "
        "training data (see below) may need fine-tuning (`recipes/finetune_alcock.yaml` shows how).\n"
        "* Not a calibrated classifier or physical model: check downstream results against labelled data.",
    ]
    if provenance:
        sections.append(f"## Provenance\n\n{provenance}")
    sections.append(
        "## Training data and recipe\n\n"
        + (training or "Not recorded with this upload: pass `training=` (markdown) to `push_to_hub`, or push the folder "
           "a `SavePretrainedCallback` wrote, which records the training settings.")
    )
    if by_split:
        rows = "\n".join(
            f"| {split} | {METRIC_NAMES[name]} | {value:.4f} |"
            for split, values in by_split.items()
            for name, value in sorted(values.items())
        )
        sections.append(f"## Evaluation results\n\nOn {dataset_name}:\n\n| split | metric | value |\n|---|---|---|\n{rows}")
    sections.append(
        "## How to load and embed\n\n```python\nimport torch\nimport astromer_hf  # registers the Astromer classes\n"
        "from transformers import AutoModel\nfrom astromer_hf import AstromerProcessor\n\n"
        f'model = AutoModel.from_pretrained("{location}").eval()\n'
        f'processor = AstromerProcessor.from_pretrained("{location}")\n'
        "inputs = processor(light_curves)  # each an (N, 3) array: time [days], magnitude, error\n"
        "with torch.no_grad():\n"
        '    out = model(inputs["magnitudes"], inputs["times"], attention_mask=inputs["attention_mask"])\n'
        "out.last_hidden_state  # (windows, window size, hidden size): one embedding per observation\n```\n\n"
        "Without astromer_hf installed, `AutoModel.from_pretrained(..., trust_remote_code=True)` uses the modeling "
        "code saved with the weights."
    )
    citations = [SOFTWARE_CITATION, CITATION_ASTROMER_1] + ([CITATION_ASTROMER_2] if generation == "Astromer 2" else [])
    sections.append("## Citation\n\n```bibtex\n" + "\n\n".join(citations) + "\n```")
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n")


def card_for_folder(folder: str | Path, *, repo_id: str | None = None, **kwargs: Any) -> ModelCard:
    """The card of a ``save_pretrained`` folder: its config, its parameter count, and, when the folder holds the
    ``training_metrics.json`` of :class:`~astromer_hf.training.SavePretrainedCallback`, its metrics and training
    settings (``kwargs`` override them)."""
    from safetensors import SafetensorError, safe_open

    folder = Path(folder)
    config = AstromerConfig.from_pretrained(folder)
    n_parameters = None
    weights = folder / "model.safetensors"
    if weights.is_file():
        try:
            with safe_open(str(weights), "pt") as tensors:
                n_parameters = sum(math.prod(tensors.get_slice(name).get_shape()) for name in tensors.keys())
        except SafetensorError as error:
            raise OSError(f"{weights} is truncated or damaged ({error}); write the folder again.") from None
    record_path = folder / "training_metrics.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        kwargs.setdefault("metrics", record.get("metrics", {}))
        kwargs.setdefault("training", record.get("training"))
    kwargs.setdefault("title", repo_id.split("/")[-1] if repo_id else folder.name)
    kwargs.setdefault("description", f"An Astromer model trained with astromer_hf ({_generation(config)} design).")
    return render_model_card(config, repo_id=repo_id, n_parameters=n_parameters, **kwargs)

